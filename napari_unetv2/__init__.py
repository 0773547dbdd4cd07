"""napari-unetv2: U-Net v2 segmentation, correction and fine-tuning inside napari."""
__version__ = "0.1.0"
