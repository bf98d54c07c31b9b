"""The project's package. Configs register its modules through ``custom_imports`` of
``custom_modules.models`` (MMDetection) and ``custom_modules.datasets`` /
``custom_modules.evaluation.semantic_writer`` (MMSegmentation); importing the package
itself stays light, so the data and post-processing tools start without torch."""
