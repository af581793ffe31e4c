"""Tooling around the library, not imported by training or evaluation: the procedural synthetic world
(:mod:`.synthetic`), frame extraction from videos (:mod:`.video`), the end-to-end demo (:mod:`.demo`) and the
helpers that tests and benchmarks use to run short experiments (:mod:`.experiments`)."""
