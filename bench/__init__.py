"""twinsite's benchmarks: each compares us with a peer on the same data in the same run (`make bench`)."""
