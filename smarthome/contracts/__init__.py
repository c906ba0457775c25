"""The formats passed between stages, each defined once as a type and read through it."""
