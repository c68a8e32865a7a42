"""The local supervisor behind `make run`: the whole taskmesh suite as local processes."""
