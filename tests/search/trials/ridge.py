"""A Core API trial that logs a model: a scikit-learn ridge on a linear target."""

import numpy as np
from sklearn.linear_model import Ridge

import shipyard
from shipyard.train import init

with init({"alpha": 1.0, "epochs": 1}) as ctx:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=200)
    model = Ridge(alpha=float(ctx.hparams["alpha"])).fit(x[:150], y[:150])
    val = float(np.mean((model.predict(x[150:]) - y[150:]) ** 2))
    ctx.report(0, {"val_loss": val})
    shipyard.log_model(model, "model", input_example=x[:4])
