"""Learned frame/resolution policies for video that really skip compute (AR-Net style)."""
