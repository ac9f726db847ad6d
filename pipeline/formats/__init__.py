"""The project's file formats: CSV corpus input, documents, packed Arrow shards, manifest, metrics."""
