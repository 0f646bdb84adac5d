"""Importers of pretrained weights from other frameworks into our parameter trees."""
