"""neo.inference: what runs a trained checkpoint (the file itself is read by neo.checkpoints.format).

loading: rebuild the module (EMA or raw weights) and feed it images; evaluate: ``neo-eval`` (COCO metrics at a
stated precision); predict: ``neo-predict`` (image, folder or video).
"""
