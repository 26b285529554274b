"""The baseline's PyTorch network: a bag of hashed n-gram embeddings per text field, a tiny CNN
for the thumbnails, one hidden layer, and logits masked to the classes of each row's task.

    >>> import torch
    >>> net = BaselineNetwork(buckets=64, text_dim=8, image_size=16, hidden=8, classes=3)
    >>> batch = dict(ids=torch.tensor([1, 2, 3]), offsets=torch.tensor([0, 2, 2, 2, 3, 3]),
    ...              images=torch.zeros(0, 3, 16, 16), image_rows=torch.zeros(0, dtype=torch.long))
    >>> mask = torch.tensor([[True, True, False], [False, False, True]])
    >>> net(**batch, mask=mask).softmax(-1)[1].tolist()
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import torch
from torch import nn

from kdsl.record import TEXT_FIELDS

IMAGE_FEATURES = 64
FIELDS = len(TEXT_FIELDS)  # text bags per row, averaged separately: user, agent, ocr


class BaselineNetwork(nn.Module):
    def __init__(self, buckets: int, text_dim: int, image_size: int, hidden: int, classes: int):
        super().__init__()
        self.text = nn.EmbeddingBag(buckets, text_dim, mode="mean")
        self.image = nn.Sequential(
            # Batch norm keeps the branch alive at the learning rates the text embedding needs.
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, IMAGE_FEATURES, 3, stride=2, padding=1), nn.BatchNorm2d(IMAGE_FEATURES), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        # +1: whether the row has any image, so that "no image" is not confused with a black one.
        self.head = nn.Sequential(
            nn.Dropout(0.2),
            nn.Linear(FIELDS * text_dim + IMAGE_FEATURES + 1, hidden), nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, ids, offsets, images, image_rows, mask):
        n_rows = offsets.shape[0] // FIELDS
        text = self.text(ids, offsets).reshape(n_rows, -1)
        # A row's image feature is the mean over its images; rows without any get zeros.
        summed = torch.zeros(n_rows, IMAGE_FEATURES, dtype=text.dtype)
        counts = torch.zeros(n_rows, 1, dtype=text.dtype)
        if images.shape[0]:
            summed = summed.index_add(0, image_rows, self.image(images))
            counts = counts.index_add(0, image_rows, torch.ones(images.shape[0], 1, dtype=text.dtype))
        image = summed / counts.clamp(min=1)
        logits = self.head(torch.cat([text, image, (counts > 0).to(text.dtype)], dim=1))
        # Softmax over the row's own task only: other tasks' classes get probability 0.
        return logits.masked_fill(~mask, float("-inf"))
