from jaxcnn.configs.cifar10_tutorial import __doc__, get_config  # noqa: F401  (re-export; see jaxcnn/configs)
