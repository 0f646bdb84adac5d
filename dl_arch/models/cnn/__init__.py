"""CNN family: LeNet-5, AlexNet, VGG, ResNet, GoogLeNet, MobileNetV2 (channels-last, linen).

Every model takes `num_classes`, `stem` ("imagenet" for 224x224, "small" for 28x28/32x32),
`dtype`, `param_dtype`, and is called as `model.apply(variables, x_BHWC, train=...)`;
BatchNorm statistics live in the `batch_stats` collection and per-stage feature maps are
sown into `intermediates`. Importing this package registers every name and variant.
"""

from dl_arch.models.cnn.alexnet import AlexNet
from dl_arch.models.cnn.googlenet import GoogLeNet
from dl_arch.models.cnn.lenet import LeNet5
from dl_arch.models.cnn.mobilenet import MobileNetV2
from dl_arch.models.cnn.resnet import ResNet
from dl_arch.models.cnn.vgg import VGG

__all__ = ["AlexNet", "GoogLeNet", "LeNet5", "MobileNetV2", "ResNet", "VGG"]
