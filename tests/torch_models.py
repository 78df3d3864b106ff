"""Small PyTorch models for the import tests and benchmarks/import.py: a digits CNN (trained in seconds)
and a tiny transformer encoder over token ids."""

import torch


class DigitsCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Dropout(0.2))
        self.head = torch.nn.Linear(16 * 4 * 4, 10)

    def forward(self, image):
        return self.head(self.features(image).flatten(1))


class TinyTransformer(torch.nn.Module):
    """Token ids in, class logits out: embedding, learned positions, two encoder layers, mean pooling."""

    def __init__(self, vocab=50, d=32, seq=16):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Parameter(torch.randn(1, seq, d) * 0.1)
        layer = torch.nn.TransformerEncoderLayer(d, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, 3)

    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids) + self.pos).mean(1))


def train_digits_cnn(X, y, epochs=4, seed=0):
    """A DigitsCNN trained on (N, 1, 8, 8) images scaled to [0, 1]; returned in training mode."""
    torch.manual_seed(seed)
    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(epochs):
        for i in range(0, len(X), 100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[i:i + 100]), y[i:i + 100]).backward()
            opt.step()
    return net
