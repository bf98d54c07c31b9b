"""Datasets and data transforms: VISION splits for MMDetection (``vision_coco``:
``VisionCocoDataset``; ``instance_loading``: ``LoadPolygonAnnotations``,
``PolygonsToBitmaps``; ``copy_paste``) and MMSegmentation (``vision_semantic``:
``VisionSemanticDataset``; ``transforms``: ``LoadDefectMask``). The configs import the
modules they use, so that a detector's run does not import MMSegmentation."""
