"""Recipes: declarative TOML descriptions of data, model and training stages."""

from .load import load_recipe, parse_override
from .schema import ComponentTable, DataConfig, Recipe, StageConfig
from .show import recipe_to_dict, recipe_to_toml

__all__ = [
    "ComponentTable", "DataConfig", "Recipe", "StageConfig",
    "load_recipe", "parse_override", "recipe_to_dict", "recipe_to_toml",
]
