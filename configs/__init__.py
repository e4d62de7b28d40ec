"""YAML configuration: defaults, problem and dataset presets, the merge of the layers, and the
typed-options machinery every section is built with (configs/typed.py)."""
from configs.loader import (available_datasets, available_problems, flat_items, merge_config,
                            merge_more, parse_override, with_defaults)
from configs.typed import ConfigError, Options, option

__all__ = ["ConfigError", "Options", "available_datasets", "available_problems", "flat_items",
           "merge_config", "merge_more", "option", "parse_override", "with_defaults"]
