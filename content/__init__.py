"""User-facing text and facts as data files (TOML), shipped inside the package."""
