from jaxcnn.configs.vgg16_cifar10 import __doc__, get_config  # noqa: F401  (re-export; see jaxcnn/configs)
