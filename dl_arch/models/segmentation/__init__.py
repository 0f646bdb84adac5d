"""Semantic segmentation: FCN, U-Net, DeepLabV3 and a ViT segmenter (per-pixel class logits).

Every model is called as `model.apply(variables, images_BHWC, train=...)` and returns
logits [B, H, W, num_classes] in float32 at the input resolution; models with `aux_head`
sow their auxiliary logits (same shape) as `aux_logits/aux`. The encoders are the family's
classifiers' own trunks (`resnet_trunk`, `vgg_trunk`, `vit_tokens`), so their parameters have
the classifiers' paths at the top level and classification weights load by path.

Registered names (published size / tiny CPU variant):
  fcn32s_vgg16, fcn16s_vgg16, fcn8s_vgg16 / fcn32s_tiny, fcn16s_tiny, fcn8s_tiny
  fcn_resnet50, fcn_resnet101 / fcn_resnet_tiny
  deeplabv3_resnet50, deeplabv3_resnet101 / deeplabv3_tiny
  unet / unet_tiny
  vit_segmenter (ViT-B/16) / vit_segmenter_tiny
"""

from dl_arch.models.segmentation.deeplab import DeepLabV3
from dl_arch.models.segmentation.fcn import FCN
from dl_arch.models.segmentation.fcn_resnet import FCNResNet
from dl_arch.models.segmentation.unet import UNet
from dl_arch.models.segmentation.vit_segmenter import ViTSegmenter

__all__ = ["FCN", "DeepLabV3", "FCNResNet", "UNet", "ViTSegmenter"]
