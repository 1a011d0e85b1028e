"""Features stage: frozen encoders by library, their features cached to Parquet, and the rows a
training job reads back."""
