"""Paper presets: their variants, the stored results they gather, and the registered claim checks."""
