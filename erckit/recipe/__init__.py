"""Recipes: declarative TOML descriptions of data, model and training stages."""

from .load import load_recipe, parse_override
from .schema import ComponentTable, DataConfig, DistillStage, FuseStage, Recipe, SupervisedStage
from .show import recipe_to_dict, recipe_to_toml

__all__ = [
    "ComponentTable", "DataConfig", "DistillStage", "FuseStage", "Recipe", "SupervisedStage",
    "load_recipe", "parse_override", "recipe_to_dict", "recipe_to_toml",
]
