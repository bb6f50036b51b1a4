"""Datasets: the seed's file formats, generation, import of real text, validation."""
