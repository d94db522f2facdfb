from jaxcnn.configs.preact_resnet18_cifar10 import __doc__, get_config  # noqa: F401  (re-export; see jaxcnn/configs)
