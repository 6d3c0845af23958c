"""Parts of pages too large to sit in pages/__init__.py; none is a page itself."""
