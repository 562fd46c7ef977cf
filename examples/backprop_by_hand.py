"""Backpropagation by hand on the smallest interesting network: 2-3-1.

    python examples/backprop_by_hand.py [--lr 0.5]

Two inputs, three hidden sigmoid neurons, one sigmoid output, squared error.
One training example x = (0.35, 0.90) with target t = 1.0, and weights chosen
so that the network predicts exactly 0.8: the classic "predicted 0.8, target
1.0" case. The script does one forward pass, the error, then every
chain-rule factor of every weight's gradient, each computed three ways:

    ref   fastmlp.reference, the pure-NumPy twin of the core (readable maths)
    core  the C++ core: its kernels through fm.ops, and the whole network's
          gradient through fm.MLP.gradients
    hand  the product of the printed chain-rule factors, in plain Python

and finally one SGD step w <- w - lr * dL/dw, by hand and by the core.

The loss is torch.nn.MSELoss's mean of squares, L = (a2 - t)^2 for one
output, without the 1/2 that many textbooks put in front: so dL/da2 is
2 (a2 - t), not (a2 - t). Everything runs in float64, where core and
reference agree to about 1e-16.
"""

import argparse
import math

import numpy as np

import fastmlp as fm
from fastmlp import ops
from fastmlp import reference as ref

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.5)
args = parser.parse_args()
lr = args.lr

x = np.array([[0.35, 0.90]])                  # (1, 2): one example, two inputs
t = np.array([[1.0]])                         # (1, 1): its target
W1 = np.array([[0.10, 0.80],                  # (3, 2): hidden layer, torch's (out, in)
               [0.40, 0.60],
               [0.30, -0.50]])
b1 = np.array([0.0, 0.1, -0.2])               # (3,)
W2 = np.array([[0.30, 0.90, -0.40]])          # (1, 3): output layer
# The output bias that makes the prediction 0.8: sigmoid(z2) = 0.8 <=> z2 = ln 4.
a1 = 1.0 / (1.0 + np.exp(-(x @ W1.T + b1)))
b2 = np.array([math.log(4.0) - float(a1[0] @ W2[0])])

# -- the core's model, with the same weights written into its parameter buffer
model = fm.MLP([2, fm.Dense(3, activation="sigmoid"), fm.Dense(1, activation="sigmoid")],
               loss="mse", dtype="float64", seed=0)
model.layers[0].W, model.layers[0].b = W1, b1
model.layers[1].W, model.layers[1].b = W2, b2


def row(name, values_ref, values_core, fmt="{:+.12f}"):
    vr = np.ravel(values_ref)
    vc = np.ravel(values_core)
    cells = "  ".join(fmt.format(v) for v in vr)
    diff = float(np.max(np.abs(vr - vc))) if vr.size else 0.0
    print(f"  {name:<22} {cells}   |core - ref| {diff:.1e}")
    return diff


worst_core_ref = 0.0
print("2-3-1 network, sigmoid hidden and output, squared error, float64")
print(f"x = {x[0].tolist()}, target t = {t[0, 0]}")
print()
print("Forward pass                (ref; core differs by)")
z1_r, a1_r = ref.dense_forward(x, W1, b1, "sigmoid")
z1_c, a1_c = ops.dense_forward(x, W1, b1, "sigmoid")
z2_r, a2_r = ref.dense_forward(a1_r, W2, b2, "sigmoid")
z2_c, a2_c = ops.dense_forward(a1_c, W2, b2, "sigmoid")
worst_core_ref = max(worst_core_ref,
                     row("z1 = x W1^T + b1", z1_r, z1_c),
                     row("a1 = sigmoid(z1)", a1_r, a1_c),
                     row("z2 = a1 W2^T + b2", z2_r, z2_c),
                     row("a2 = sigmoid(z2)", a2_r, a2_c))
out_core = model.forward(x)
worst_core_ref = max(worst_core_ref, row("MLP.forward(x)", a2_r, out_core))
loss_r = ref.mse_loss(a2_r, t)
loss_c = model.loss(x, t)
worst_core_ref = max(worst_core_ref, row("L = (a2 - t)^2", [loss_r], [loss_c]))
a2 = float(a2_r[0, 0])
print(f"prediction {a2:.6f}, target {t[0, 0]:.1f}, error a2 - t = {a2 - t[0, 0]:+.6f}, "
      f"loss {loss_r:.6f}")

print()
print("Chain-rule factors            (ref; core differs by)")
dL_da2_r = ref.mse_backward(a2_r, t)
_, _, dL_da2_c = ops.loss_forward_backward("mse", z2_c, a2_c, t)
da2_dz2_r = ref.activation_backward(np.ones_like(z2_r), z2_r, a2_r, "sigmoid")
da2_dz2_c = ops.activation_backward(np.ones_like(z2_c), z2_c, a2_c, "sigmoid")
da1_dz1_r = ref.activation_backward(np.ones_like(z1_r), z1_r, a1_r, "sigmoid")
da1_dz1_c = ops.activation_backward(np.ones_like(z1_c), z1_c, a1_c, "sigmoid")
worst_core_ref = max(worst_core_ref,
                     row("dL/da2 = 2 (a2 - t)", dL_da2_r, dL_da2_c),
                     row("da2/dz2 = a2 (1 - a2)", da2_dz2_r, da2_dz2_c),
                     row("dz2/dw2_j = a1_j", a1_r, a1_c),
                     row("dz2/da1_j = w2_j", W2, model.layers[1].W),
                     row("da1_j/dz1_j", da1_dz1_r, da1_dz1_c),
                     row("dz1_j/dw1_jk = x_k", x, x))
print("  (sigmoid'(z) = sigmoid(z) (1 - sigmoid(z)): the derivative needs only the output)")

# -- whole-network gradients: reference Network.backward and the core
net = ref.Network([W1.copy(), W2.copy()], [b1.copy(), b2.copy()], ["sigmoid", "sigmoid"], "mse")
_, grads_r = net.backward(x, t)
grads_c = model.gradients(x, t)

# The hand product: plain Python floats, one weight at a time.
dL_da2 = 2.0 * (a2 - t[0, 0])
da2_dz2 = a2 * (1.0 - a2)
delta2 = dL_da2 * da2_dz2                     # dL/dz2
h = [float(v) for v in a1_r[0]]
worst_hand = 0.0
print()
print("Output layer: dL/dw2_j = dL/da2 * da2/dz2 * dz2/dw2_j")
print(f"  {'weight':<8} {'dL/da2':>10} {'da2/dz2':>10} {'a1_j':>10}   {'hand':>16} "
      f"{'reference':>16} {'core':>16}")
for j in range(3):
    hand = dL_da2 * da2_dz2 * h[j]
    r, c = grads_r[1]["W"][0, j], grads_c[1]["W"][0, j]
    worst_hand = max(worst_hand, abs(hand - c))
    worst_core_ref = max(worst_core_ref, abs(r - c))
    print(f"  w2_{j:<5} {dL_da2:+10.6f} {da2_dz2:10.6f} {h[j]:10.6f}   {hand:+16.12f} "
          f"{r:+16.12f} {c:+16.12f}")
hand = delta2
worst_hand = max(worst_hand, abs(hand - grads_c[1]["b"][0]))
worst_core_ref = max(worst_core_ref, abs(grads_r[1]["b"][0] - grads_c[1]["b"][0]))
print(f"  {'b2':<8} {dL_da2:+10.6f} {da2_dz2:10.6f} {1.0:10.6f}   {hand:+16.12f} "
      f"{grads_r[1]['b'][0]:+16.12f} {grads_c[1]['b'][0]:+16.12f}")

print()
print("Hidden layer: dL/dw1_jk = dL/da2 * da2/dz2 * w2_j * da1_j/dz1_j * x_k")
print(f"  {'weight':<8} {'dL/dz2':>10} {'w2_j':>7} {'da1/dz1':>9} {'x_k':>6}   {'hand':>16} "
      f"{'reference':>16} {'core':>16}")
for j in range(3):
    s = h[j] * (1.0 - h[j])
    for k in range(2):
        hand = dL_da2 * da2_dz2 * W2[0, j] * s * x[0, k]
        r, c = grads_r[0]["W"][j, k], grads_c[0]["W"][j, k]
        worst_hand = max(worst_hand, abs(hand - c))
        worst_core_ref = max(worst_core_ref, abs(r - c))
        print(f"  w1_{j}{k:<4} {delta2:+10.6f} {W2[0, j]:+7.2f} {s:9.6f} {x[0, k]:6.2f}   "
              f"{hand:+16.12f} {r:+16.12f} {c:+16.12f}")
    hand = dL_da2 * da2_dz2 * W2[0, j] * s
    r, c = grads_r[0]["b"][j], grads_c[0]["b"][j]
    worst_hand = max(worst_hand, abs(hand - c))
    worst_core_ref = max(worst_core_ref, abs(r - c))
    print(f"  b1_{j:<5} {delta2:+10.6f} {W2[0, j]:+7.2f} {s:9.6f} {1.0:6.2f}   "
          f"{hand:+16.12f} {r:+16.12f} {c:+16.12f}")

# -- one SGD step: by hand from the hand gradients' reference twins, and by the core
print()
print(f"One SGD step, lr = {lr}: w <- w - lr * dL/dw")
new_W2_hand = W2 - lr * grads_r[1]["W"]
new_W1_hand = W1 - lr * grads_r[0]["W"]
net.sgd_step(grads_r, lr)                     # the reference's update, in place
model.compile(optimizer=fm.optim.SGD(lr=lr))
loss_before = model.train_step(x, t)          # the core's step (returns the loss before it)
worst_update = max(float(np.max(np.abs(model.layers[1].W - new_W2_hand))),
                   float(np.max(np.abs(model.layers[0].W - new_W1_hand))),
                   float(np.max(np.abs(net.weights[1] - new_W2_hand))))
for j in range(3):
    print(f"  w2_{j}: {W2[0, j]:+.6f} - {lr} * ({grads_r[1]['W'][0, j]:+.6f}) = "
          f"{new_W2_hand[0, j]:+.6f}   core {model.layers[1].W[0, j]:+.6f}")
a2_after = float(model.forward(x)[0, 0])
print(f"prediction {a2:.6f} -> {a2_after:.6f}, loss {loss_before:.6f} -> "
      f"{model.loss(x, t):.6f}")

print()
print(f"max |core - reference| over every value above: {worst_core_ref:.1e}")
print(f"max |hand chain-rule product - core dL/dw|: {worst_hand:.1e}")
print(f"max |hand update - core update|: {worst_update:.1e}")
