"""Reports: tables the documentation quotes, generated from what the recipes measured."""
