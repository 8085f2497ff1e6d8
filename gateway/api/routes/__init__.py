"""HTTP route tables, one module per resource."""
