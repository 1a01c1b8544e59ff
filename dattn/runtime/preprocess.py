"""Images in, network input out: letterboxing as ultralytics' predictor does it, in numpy and OpenCV.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import numpy as np

PAD_VALUE = 114  # the grey ultralytics pads with


class Letterbox(object):
    """Where an image of `shape` (h, w) goes in a network input of `size` (h, w): scale, resized size, padding.

    auto=True pads only up to the next multiple of `stride` (ultralytics' "minimum rectangle", used for
    dynamic-shape models); else the input is exactly `size`.
    """

    def __init__(self, shape, size, auto=False, stride=32):
        h, w = int(shape[0]), int(shape[1])
        gain = min(size[0] / float(h), size[1] / float(w))
        self.resized = (max(int(round(h * gain)), 1), max(int(round(w * gain)), 1))  # (h, w)
        pad_h, pad_w = size[0] - self.resized[0], size[1] - self.resized[1]
        if auto:
            pad_h, pad_w = pad_h % stride, pad_w % stride
        self.top, self.bottom = int(round(pad_h / 2.0 - 0.1)), int(round(pad_h / 2.0 + 0.1))
        self.left, self.right = int(round(pad_w / 2.0 - 0.1)), int(round(pad_w / 2.0 + 0.1))
        self.shape = (h, w)
        self.input_shape = (self.resized[0] + self.top + self.bottom, self.resized[1] + self.left + self.right)

    def apply(self, image):
        """The letterboxed uint8 image (H, W, 3), same channel order as `image`."""
        import cv2

        if image.shape[:2] != self.resized:
            image = cv2.resize(image, (self.resized[1], self.resized[0]), interpolation=cv2.INTER_LINEAR)
        return cv2.copyMakeBorder(image, self.top, self.bottom, self.left, self.right, cv2.BORDER_CONSTANT,
                                  value=(PAD_VALUE,) * 3)

    def boxes_to_image(self, boxes):
        """xyxy boxes in network-input pixels -> pixels of the original image, clipped to it."""
        boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        gain_y, gain_x = self.resized[0] / float(self.shape[0]), self.resized[1] / float(self.shape[1])
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.left) / gain_x
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.top) / gain_y
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, self.shape[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, self.shape[0])
        return boxes


class Stretch(object):
    """An image of `shape` (h, w) resized to exactly `size` (h, w), aspect ratio not kept: RT-DETR's pre-processing
    (ultralytics' scale_fill). Boxes are scaled back by the image's own width and height and, as ultralytics does
    for RT-DETR, not clipped to it."""

    def __init__(self, shape, size):
        self.shape = (int(shape[0]), int(shape[1]))
        self.input_shape = (int(size[0]), int(size[1]))

    def apply(self, image):
        """The resized uint8 image (H, W, 3), same channel order as `image`."""
        import cv2

        if image.shape[:2] == self.input_shape:
            return image
        return cv2.resize(image, (self.input_shape[1], self.input_shape[0]), interpolation=cv2.INTER_LINEAR)

    def boxes_to_image(self, boxes):
        """xyxy boxes in network-input pixels -> pixels of the original image."""
        boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        boxes[:, [0, 2]] *= self.shape[1] / float(self.input_shape[1])
        boxes[:, [1, 3]] *= self.shape[0] / float(self.input_shape[0])
        return boxes


def read_image(path):
    """BGR uint8 (H, W, 3) from an image file; IOError naming the file when it is not a readable image."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise IOError("{}: not a readable image".format(path))
    return image


def to_network_input(images):
    """Letterboxed BGR uint8 images of one shape -> float32 (N, 3, H, W) RGB in [0, 1], as the model expects."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) / np.float32(255.0)
