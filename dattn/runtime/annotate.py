"""Draw detections onto an image: a box and a "name score" label per detection, one colour per class.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

# BGR colours, distinct on photographs and on grey letterbox padding alike.
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (211, 188, 0), (209, 99, 0), (255, 128, 0), (168, 153, 44))


def draw_predictions(image, prediction):
    """A copy of the BGR uint8 `image` with `prediction` (boxes in its pixels) drawn on it."""
    import cv2

    out = image.copy()
    thickness = max(1, int(round(sum(out.shape[:2]) / 600.0)))
    scale = max(0.35, thickness / 3.0)
    for box, score, class_id, name in zip(prediction.boxes, prediction.scores, prediction.class_ids,
                                          prediction.class_names):
        colour = PALETTE[int(class_id) % len(PALETTE)]
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
        label = "{} {:.2f}".format(name, float(score))
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y0 - height - baseline if y0 - height - baseline >= 0 else y0  # inside the box at the image's top edge
        cv2.rectangle(out, (x0, top), (x0 + width, top + height + baseline), colour, -1)
        cv2.putText(out, label, (x0, top + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
