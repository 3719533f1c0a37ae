"""SSD (single-shot multibox detector) for infrared bubbles, written in tf.keras.

- :mod:`.priors`: default (prior) boxes over the detector's feature maps;
- :mod:`.boxes`: box conversions, encoding with variances, IoU, matching, NMS (numpy + TF);
- :mod:`.model`: the network, with backbones by name (``vgg16`` = SSD300, ``light`` for CPUs);
- :mod:`.loss`: smooth-L1 + cross-entropy with hard-negative mining.

Boxes are normalised to the network input (0..1) unless a name says ``_px``; corner form is
``(x0, y0, x1, y1)`` with x along image columns, centre form is ``(cx, cy, w, h)``.
"""
