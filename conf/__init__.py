# Makes conf/ importable as the package genexp.conf in a built wheel (setup.py); Hydra reads only the yaml.
