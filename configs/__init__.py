"""YAML configuration: defaults, problem and dataset presets, and validated overrides."""
from configs.loader import (ConfigError, available_datasets, available_problems, flat_items,
                            load_config, override_config, parse_override)

__all__ = ["ConfigError", "available_datasets", "available_problems", "flat_items", "load_config",
           "override_config", "parse_override"]
