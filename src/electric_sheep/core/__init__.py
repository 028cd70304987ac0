"""The model and its training, on tensors only: no files, no command line, no figures."""
