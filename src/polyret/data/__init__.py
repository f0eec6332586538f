"""Data stage: readers and writers for every data set polyret touches."""
