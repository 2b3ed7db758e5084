"""neo.evaluation: COCO metrics (coco), drawing (draw) and JSON outputs (export) for detections."""
