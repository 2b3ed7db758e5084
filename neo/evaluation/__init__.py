"""neo.evaluation: COCO metrics (coco), drawing (draw) and JSON outputs (outputs) for detections."""
