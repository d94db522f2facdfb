from jaxcnn.configs.speedrun import __doc__, get_config  # noqa: F401  (re-export; see jaxcnn/configs)
