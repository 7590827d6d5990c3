"""The pipeline on local AWS (moto): the real state machine, the real handlers, no account."""
