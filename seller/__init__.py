"""The seller's side: channel configuration, the marketplace table, input files and the synthetic seller.

Everything here is plain Python (no Dagster), shared by the pipeline and by the emulator as reference data.
"""
