"""
fastmlp compiled core
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Activation', 'EpochResult', 'Init', 'LayerSpec', 'Loss', 'Network32', 'Network64', 'OptConfig', 'OptimizerKind', 'StepResult', 'activation_backward', 'activation_forward', 'apply_mask', 'batchnorm_backward', 'batchnorm_forward_eval', 'batchnorm_forward_train', 'batchnorm_update_running', 'bf16_kernel', 'compiler', 'dense_backward', 'dense_forward', 'dropout_mask', 'fma_peak', 'gemm_kernel', 'gemm_pieces_max_k', 'gemm_plan', 'get_num_threads', 'have_bf16_instructions', 'have_openmp', 'loss_forward_backward', 'matmul', 'matmul_bf16', 'matmul_bf16_panel', 'matmul_direct', 'matmul_pieces', 'optimizer_init_state', 'optimizer_state_count', 'optimizer_step', 'permutation', 'round_bf16', 'scan', 'set_isa', 'set_num_threads', 'supported_bf16_isas', 'supported_isas']
class Activation:
    """
    Activation functions (csrc/nn/activations.h)
    
    Members:
    
      identity
    
      sigmoid
    
      tanh
    
      relu
    
      leaky_relu
    
      elu
    
      gelu
    
      softplus
    """
    __members__: typing.ClassVar[dict[str, Activation]]
    elu: typing.ClassVar[Activation]
    gelu: typing.ClassVar[Activation]
    identity: typing.ClassVar[Activation]
    leaky_relu: typing.ClassVar[Activation]
    relu: typing.ClassVar[Activation]
    sigmoid: typing.ClassVar[Activation]
    softplus: typing.ClassVar[Activation]
    tanh: typing.ClassVar[Activation]
    @typing.overload
    def __eq__(self, other: Activation) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Activation) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Loss:
    """
    Losses (csrc/nn/losses.h)
    
    Members:
    
      mse
    
      cross_entropy
    
      binary_cross_entropy
    
      poisson
    """
    __members__: typing.ClassVar[dict[str, Loss]]
    binary_cross_entropy: typing.ClassVar[Loss]
    cross_entropy: typing.ClassVar[Loss]
    mse: typing.ClassVar[Loss]
    poisson: typing.ClassVar[Loss]
    @typing.overload
    def __eq__(self, other: Loss) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Loss) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class OptimizerKind:
    """
    Optimizers (csrc/optim/optimizer.h)
    
    Members:
    
      sgd
    
      adam
    
      adamw
    
      rmsprop
    
      adagrad
    """
    __members__: typing.ClassVar[dict[str, OptimizerKind]]
    adagrad: typing.ClassVar[OptimizerKind]
    adam: typing.ClassVar[OptimizerKind]
    adamw: typing.ClassVar[OptimizerKind]
    rmsprop: typing.ClassVar[OptimizerKind]
    sgd: typing.ClassVar[OptimizerKind]
    @typing.overload
    def __eq__(self, other: OptimizerKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: OptimizerKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Init:
    """
    Weight initializations (csrc/network/parameters.h)
    
    Members:
    
      he_uniform
    
      he_normal
    
      glorot_uniform
    
      glorot_normal
    
      lecun_normal
    
      zeros
    """
    __members__: typing.ClassVar[dict[str, Init]]
    glorot_normal: typing.ClassVar[Init]
    glorot_uniform: typing.ClassVar[Init]
    he_normal: typing.ClassVar[Init]
    he_uniform: typing.ClassVar[Init]
    lecun_normal: typing.ClassVar[Init]
    zeros: typing.ClassVar[Init]
    @typing.overload
    def __eq__(self, other: Init) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Init) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class LayerSpec:
    """
    One layer of a core network (csrc/network/layer.h).
    """
    def __getstate__(self) -> tuple[int, int, Activation, float, bool]:
        ...
    def __init__(self, in_features: typing.SupportsInt | typing.SupportsIndex, out_features: typing.SupportsInt | typing.SupportsIndex, activation: Activation = ..., dropout: typing.SupportsFloat | typing.SupportsIndex = 0.0, batch_norm: bool = False) -> None:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, arg0: tuple) -> None:
        ...
    @property
    def activation(self) -> Activation:
        ...
    @property
    def batch_norm(self) -> bool:
        ...
    @property
    def dropout(self) -> float:
        ...
    @property
    def in_features(self) -> int:
        ...
    @property
    def out_features(self) -> int:
        ...
class OptConfig:
    """
    An optimizer's hyper-parameters as the core reads them (csrc/optim/optimizer.h). Built from keywords (kind and any field), validated, read-only.
    """
    __hash__: typing.ClassVar[None] = None
    @staticmethod
    def fields() -> list:
        """
        The field names, kind excluded, in C++ order.
        """
    def __eq__(self, arg0: typing.Any) -> typing.Any:
        ...
    def __getstate__(self) -> dict:
        ...
    def __init__(self, **kwargs) -> None:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, arg0: dict) -> None:
        ...
    def as_dict(self) -> dict:
        """
        kind and every field by name
        """
    @property
    def alpha(self) -> float:
        """
        rmsprop
        """
    @property
    def amsgrad(self) -> bool:
        """
        adam, adamw: denominator from the max over steps of v
        """
    @property
    def beta1(self) -> float:
        """
        adam, adamw
        """
    @property
    def beta2(self) -> float:
        """
        adam, adamw
        """
    @property
    def centered(self) -> bool:
        """
        rmsprop
        """
    @property
    def dampening(self) -> float:
        """
        sgd
        """
    @property
    def eps(self) -> float:
        """
        adam, adamw, rmsprop, adagrad (defaults differ per kind)
        """
    @property
    def initial_accumulator(self) -> float:
        """
        adagrad: the sum's starting value
        """
    @property
    def kind(self) -> OptimizerKind:
        ...
    @property
    def lr(self) -> float:
        """
        learning rate
        """
    @property
    def lr_decay(self) -> float:
        """
        adagrad
        """
    @property
    def momentum(self) -> float:
        """
        sgd, rmsprop
        """
    @property
    def nesterov(self) -> bool:
        """
        sgd
        """
    @property
    def weight_decay(self) -> float:
        """
        L2 decay: coupled (sgd, adam, rmsprop, adagrad), decoupled (adamw)
        """
class StepResult(tuple):
    """
    What a training step reports (csrc/network/trainer.h).
    """
    __match_args__: typing.ClassVar[tuple] = ('loss', 'ok', 'bad_layer')
    n_fields: typing.ClassVar[int] = 3
    n_sequence_fields: typing.ClassVar[int] = 3
    n_unnamed_fields: typing.ClassVar[int] = 0
    @staticmethod
    def __new__(type, *args, **kwargs):
        """
        Create and return a new object.  See help(type) for accurate signature.
        """
    @staticmethod
    def __reduce__(*args, **kwargs):
        ...
    def __repr__(self):
        """
        Return repr(self).
        """
class EpochResult:
    """
    What an epoch, or a part of one, reports (csrc/network/trainer.h).
    """
    def __init__(self) -> None:
        ...
    @property
    def bad_batch(self) -> int:
        ...
    @property
    def bad_layer(self) -> int:
        ...
    @property
    def bad_loss(self) -> float:
        ...
    @property
    def batches(self) -> int:
        ...
    @property
    def correct(self) -> float:
        ...
    @property
    def diverged(self) -> bool:
        ...
    @property
    def grad_norm_sum(self) -> list[float]:
        ...
    @property
    def interrupted(self) -> bool:
        ...
    @property
    def loss_sum(self) -> float:
        ...
    @property
    def predictions(self) -> float:
        ...
    @property
    def rows(self) -> int:
        ...
class _WeightHandle32:
    """
    Base of the NumPy views of a network's weights: while one lives, every pass repacks the bf16 weight panels (network.h).
    """
class _TrainingClaim32:
    """
    Network.training(what): a `with` block that holds the network's training claim.
    """
    def __enter__(self) -> typing.Any:
        ...
    def __exit__(self, *args) -> bool:
        ...
class Network32:
    def __init__(self, layers: collections.abc.Sequence[LayerSpec], loss: Loss) -> None:
        ...
    def compute_gradients(self, X: numpy.typing.NDArray[numpy.float32], y: numpy.ndarray, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> float:
        ...
    def dead_fraction(self, layer: typing.SupportsInt | typing.SupportsIndex) -> float:
        ...
    def finish_shard(self, loss: typing.SupportsFloat | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex, begin: typing.SupportsInt | typing.SupportsIndex, end: typing.SupportsInt | typing.SupportsIndex, reduce: collections.abc.Callable) -> typing.Any:
        ...
    def finish_step(self, loss: typing.SupportsFloat | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        ...
    def forward(self, X: numpy.typing.NDArray[numpy.float32], training: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def forward_backward(self, X: numpy.typing.NDArray[numpy.float32], y: numpy.ndarray, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> float:
        ...
    def forward_backward_pieces(self, X: numpy.typing.NDArray[numpy.float32], y: numpy.ndarray, sample_weight: typing.Any, class_weight: typing.Any, row0: typing.SupportsInt | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex, den: typing.SupportsFloat | typing.SupportsIndex, bounds: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], reduce: collections.abc.Callable, first_piece: typing.SupportsInt | typing.SupportsIndex = 0, total_pieces: typing.SupportsInt | typing.SupportsIndex = 0) -> dict:
        ...
    def grad(self, layer: typing.SupportsInt | typing.SupportsIndex, what: str) -> numpy.ndarray:
        ...
    def grad_norms(self) -> list[float]:
        ...
    def grads_flat(self) -> numpy.ndarray:
        ...
    def initialize(self, schemes: collections.abc.Sequence[Init], seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def layer_spec(self, layer: typing.SupportsInt | typing.SupportsIndex) -> LayerSpec:
        ...
    def layer_state(self, layer: typing.SupportsInt | typing.SupportsIndex) -> dict:
        ...
    def loss(self, X: numpy.typing.NDArray[numpy.float32], y: numpy.ndarray, training: bool = False, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> float:
        ...
    def optimizer_config(self) -> OptConfig:
        ...
    def optimizer_state(self) -> list:
        ...
    def param(self, layer: typing.SupportsInt | typing.SupportsIndex, what: str) -> numpy.ndarray:
        ...
    def params_flat(self) -> numpy.ndarray:
        ...
    def piece_grads(self) -> list:
        ...
    def progress(self) -> tuple[int, int, float]:
        ...
    def reset_progress(self) -> None:
        ...
    def reset_unit_activity(self) -> None:
        ...
    def running_mean(self, layer: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        ...
    def running_var(self, layer: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        ...
    def set_lr(self, lr: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    def set_optimizer(self, config: OptConfig) -> None:
        ...
    def set_regularization(self, l1: typing.SupportsFloat | typing.SupportsIndex = 0.0, l2: typing.SupportsFloat | typing.SupportsIndex = 0.0, clip_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, clip_norm: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
        ...
    def train_epoch(self, X: numpy.typing.NDArray[numpy.float32], y: numpy.ndarray, perm: numpy.typing.NDArray[numpy.int64] | None, batch_size: typing.SupportsInt | typing.SupportsIndex, start: typing.SupportsInt | typing.SupportsIndex = 0, max_batches: typing.SupportsInt | typing.SupportsIndex = -1, sample_weight: typing.Any = None, class_weight: typing.Any = None, check_signals: bool = True, carry: EpochResult | None = None) -> EpochResult:
        ...
    def train_step(self, X: numpy.typing.NDArray[numpy.float32], y: numpy.ndarray, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> typing.Any:
        ...
    def training(self, what: str) -> _TrainingClaim32:
        """
        A context manager that claims the network for training in this thread for its block: training calls from other threads raise RuntimeError naming `what` until it ends; calls from this thread pass.
        """
    @property
    def bf16_gemm(self) -> bool:
        """
        The three GEMMs per layer on bf16-rounded operands with float32 sums (mixed_bfloat16); Network64 refuses it (ValueError).
        """
    @bf16_gemm.setter
    def bf16_gemm(self, arg1: bool) -> None:
        ...
    @property
    def bf16_input_panels(self) -> bool:
        """
        mixed_bfloat16: each layer's output is also written, by its forward product's epilogue, as the next layer's bf16 weight-gradient operand (default True; False packs it in that product instead, with the same values: a switch for tests and benchmarks).
        """
    @bf16_input_panels.setter
    def bf16_input_panels(self, arg1: bool) -> None:
        ...
    @property
    def bf16_panels_fresh(self) -> bool:
        """
        Whether the bf16 weight panels hold the weights now (network.h); for tests.
        """
    @property
    def loss_kind(self) -> Loss:
        ...
    @property
    def num_layers(self) -> int:
        ...
    @property
    def num_params(self) -> int:
        ...
    @property
    def optimizer_steps(self) -> int:
        ...
    @optimizer_steps.setter
    def optimizer_steps(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def step_count(self) -> int:
        ...
    @step_count.setter
    def step_count(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def training_claimed(self) -> bool:
        """
        Whether some thread is training the network now.
        """
class _WeightHandle64:
    """
    Base of the NumPy views of a network's weights: while one lives, every pass repacks the bf16 weight panels (network.h).
    """
class _TrainingClaim64:
    """
    Network.training(what): a `with` block that holds the network's training claim.
    """
    def __enter__(self) -> typing.Any:
        ...
    def __exit__(self, *args) -> bool:
        ...
class Network64:
    def __init__(self, layers: collections.abc.Sequence[LayerSpec], loss: Loss) -> None:
        ...
    def compute_gradients(self, X: numpy.typing.NDArray[numpy.float64], y: numpy.ndarray, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> float:
        ...
    def dead_fraction(self, layer: typing.SupportsInt | typing.SupportsIndex) -> float:
        ...
    def finish_shard(self, loss: typing.SupportsFloat | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex, begin: typing.SupportsInt | typing.SupportsIndex, end: typing.SupportsInt | typing.SupportsIndex, reduce: collections.abc.Callable) -> typing.Any:
        ...
    def finish_step(self, loss: typing.SupportsFloat | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        ...
    def forward(self, X: numpy.typing.NDArray[numpy.float64], training: bool = False) -> numpy.typing.NDArray[numpy.float64]:
        ...
    def forward_backward(self, X: numpy.typing.NDArray[numpy.float64], y: numpy.ndarray, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> float:
        ...
    def forward_backward_pieces(self, X: numpy.typing.NDArray[numpy.float64], y: numpy.ndarray, sample_weight: typing.Any, class_weight: typing.Any, row0: typing.SupportsInt | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex, den: typing.SupportsFloat | typing.SupportsIndex, bounds: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], reduce: collections.abc.Callable, first_piece: typing.SupportsInt | typing.SupportsIndex = 0, total_pieces: typing.SupportsInt | typing.SupportsIndex = 0) -> dict:
        ...
    def grad(self, layer: typing.SupportsInt | typing.SupportsIndex, what: str) -> numpy.ndarray:
        ...
    def grad_norms(self) -> list[float]:
        ...
    def grads_flat(self) -> numpy.ndarray:
        ...
    def initialize(self, schemes: collections.abc.Sequence[Init], seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def layer_spec(self, layer: typing.SupportsInt | typing.SupportsIndex) -> LayerSpec:
        ...
    def layer_state(self, layer: typing.SupportsInt | typing.SupportsIndex) -> dict:
        ...
    def loss(self, X: numpy.typing.NDArray[numpy.float64], y: numpy.ndarray, training: bool = False, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> float:
        ...
    def optimizer_config(self) -> OptConfig:
        ...
    def optimizer_state(self) -> list:
        ...
    def param(self, layer: typing.SupportsInt | typing.SupportsIndex, what: str) -> numpy.ndarray:
        ...
    def params_flat(self) -> numpy.ndarray:
        ...
    def piece_grads(self) -> list:
        ...
    def progress(self) -> tuple[int, int, float]:
        ...
    def reset_progress(self) -> None:
        ...
    def reset_unit_activity(self) -> None:
        ...
    def running_mean(self, layer: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        ...
    def running_var(self, layer: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        ...
    def set_lr(self, lr: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    def set_optimizer(self, config: OptConfig) -> None:
        ...
    def set_regularization(self, l1: typing.SupportsFloat | typing.SupportsIndex = 0.0, l2: typing.SupportsFloat | typing.SupportsIndex = 0.0, clip_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, clip_norm: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
        ...
    def train_epoch(self, X: numpy.typing.NDArray[numpy.float64], y: numpy.ndarray, perm: numpy.typing.NDArray[numpy.int64] | None, batch_size: typing.SupportsInt | typing.SupportsIndex, start: typing.SupportsInt | typing.SupportsIndex = 0, max_batches: typing.SupportsInt | typing.SupportsIndex = -1, sample_weight: typing.Any = None, class_weight: typing.Any = None, check_signals: bool = True, carry: EpochResult | None = None) -> EpochResult:
        ...
    def train_step(self, X: numpy.typing.NDArray[numpy.float64], y: numpy.ndarray, sample_weight: typing.Any = None, class_weight: typing.Any = None) -> typing.Any:
        ...
    def training(self, what: str) -> _TrainingClaim64:
        """
        A context manager that claims the network for training in this thread for its block: training calls from other threads raise RuntimeError naming `what` until it ends; calls from this thread pass.
        """
    @property
    def bf16_gemm(self) -> bool:
        """
        The three GEMMs per layer on bf16-rounded operands with float32 sums (mixed_bfloat16); Network64 refuses it (ValueError).
        """
    @bf16_gemm.setter
    def bf16_gemm(self, arg1: bool) -> None:
        ...
    @property
    def bf16_input_panels(self) -> bool:
        """
        mixed_bfloat16: each layer's output is also written, by its forward product's epilogue, as the next layer's bf16 weight-gradient operand (default True; False packs it in that product instead, with the same values: a switch for tests and benchmarks).
        """
    @bf16_input_panels.setter
    def bf16_input_panels(self, arg1: bool) -> None:
        ...
    @property
    def bf16_panels_fresh(self) -> bool:
        """
        Whether the bf16 weight panels hold the weights now (network.h); for tests.
        """
    @property
    def loss_kind(self) -> Loss:
        ...
    @property
    def num_layers(self) -> int:
        ...
    @property
    def num_params(self) -> int:
        ...
    @property
    def optimizer_steps(self) -> int:
        ...
    @optimizer_steps.setter
    def optimizer_steps(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def step_count(self) -> int:
        ...
    @step_count.setter
    def step_count(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def training_claimed(self) -> bool:
        """
        Whether some thread is training the network now.
        """
def _threads_probe() -> int:
    """
    Testing aid: the largest thread team that ran a parallel region of the core since the last _threads_probe_reset() (0 if every region ran on the calling thread).
    """
def _threads_probe_reset() -> None:
    """
    Testing aid: forget the teams seen so far (see _threads_probe).
    """
@typing.overload
def activation_backward(dy: numpy.typing.NDArray[numpy.float32], z: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], act: Activation) -> numpy.typing.NDArray[numpy.float32]:
    ...
@typing.overload
def activation_backward(dy: numpy.typing.NDArray[numpy.float64], z: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], act: Activation) -> numpy.typing.NDArray[numpy.float64]:
    ...
@typing.overload
def activation_forward(z: numpy.typing.NDArray[numpy.float32], act: Activation) -> numpy.typing.NDArray[numpy.float32]:
    ...
@typing.overload
def activation_forward(z: numpy.typing.NDArray[numpy.float64], act: Activation) -> numpy.typing.NDArray[numpy.float64]:
    ...
def apply_mask(x: typing.Any, mask: typing.Any) -> numpy.ndarray:
    """
    x * mask, element by element (the dropout forward and backward).
    """
def batchnorm_backward(dy: typing.Any, xhat: typing.Any, gamma: typing.Any, invstd: typing.Any) -> tuple:
    """
    Backward of the training forward: returns (dx, dgamma, dbeta).
    """
def batchnorm_forward_eval(x: typing.Any, gamma: typing.Any, beta: typing.Any, running_mean: typing.Any, running_var: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex) -> numpy.ndarray:
    """
    Eval forward from the running statistics: returns y (n, f).
    """
def batchnorm_forward_train(x: typing.Any, gamma: typing.Any, beta: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex) -> tuple:
    """
    Training forward over the rows of x (n, f): returns (y, xhat, mean, var, invstd), var the biased batch variance.
    """
def batchnorm_update_running(running_mean: typing.Any, running_var: typing.Any, mean: typing.Any, var: typing.Any, n: typing.SupportsInt | typing.SupportsIndex, momentum: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    Update running_mean and running_var in place from a batch of n rows.
    """
def bf16_kernel() -> str:
    ...
@typing.overload
def dense_backward(dy: numpy.typing.NDArray[numpy.float32], x: numpy.typing.NDArray[numpy.float32], w: numpy.typing.NDArray[numpy.float32], z: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], act: Activation) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
    ...
@typing.overload
def dense_backward(dy: numpy.typing.NDArray[numpy.float64], x: numpy.typing.NDArray[numpy.float64], w: numpy.typing.NDArray[numpy.float64], z: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], act: Activation) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    ...
@typing.overload
def dense_forward(x: numpy.typing.NDArray[numpy.float32], w: numpy.typing.NDArray[numpy.float32], b: numpy.typing.NDArray[numpy.float32], act: Activation) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
    ...
@typing.overload
def dense_forward(x: numpy.typing.NDArray[numpy.float64], w: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], act: Activation) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    ...
def dropout_mask(out: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.Any, step: typing.Any, layer: typing.Any, first: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Fill the 1-D float32/float64 array `out` with the inverted-dropout mask of (seed, step, layer): 0 or 1/(1 - p) per element, for elements first, first + 1, ... of the layer's output.
    """
def fma_peak(isa: str, double: bool, threads: typing.SupportsInt | typing.SupportsIndex, seconds: typing.SupportsFloat | typing.SupportsIndex) -> float:
    ...
def gemm_kernel() -> str:
    ...
def gemm_pieces_max_k(float64: bool) -> int:
    ...
def gemm_plan(m: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, k: typing.SupportsInt | typing.SupportsIndex, trans_a: bool = False, trans_b: bool = False, dtype: str = 'float32', isa: str | None = None, lda: typing.SupportsInt | typing.SupportsIndex | None = None, ldb: typing.SupportsInt | typing.SupportsIndex | None = None, ldc: typing.SupportsInt | typing.SupportsIndex | None = None, threads: typing.SupportsInt | typing.SupportsIndex | None = None) -> dict:
    """
    The route gemm() takes for C = op(A) op(B) (see fastmlp.ops.gemm_plan).
    """
def get_num_threads() -> int:
    ...
def have_bf16_instructions() -> bool:
    ...
def have_openmp() -> bool:
    ...
@typing.overload
def loss_forward_backward(loss: Loss, z: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], target: numpy.typing.NDArray[numpy.float32], sample_weight: typing.Any = None, class_weight: typing.Any = None) -> tuple[float, numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
    ...
@typing.overload
def loss_forward_backward(loss: Loss, z: numpy.typing.NDArray[numpy.float32], y: numpy.typing.NDArray[numpy.float32], target: numpy.typing.NDArray[numpy.int32], sample_weight: typing.Any = None, class_weight: typing.Any = None) -> tuple[float, numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
    ...
@typing.overload
def loss_forward_backward(loss: Loss, z: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], target: numpy.typing.NDArray[numpy.float64], sample_weight: typing.Any = None, class_weight: typing.Any = None) -> tuple[float, numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    ...
@typing.overload
def loss_forward_backward(loss: Loss, z: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], target: numpy.typing.NDArray[numpy.int32], sample_weight: typing.Any = None, class_weight: typing.Any = None) -> tuple[float, numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    ...
@typing.overload
def matmul(a: numpy.typing.NDArray[numpy.float32], b: numpy.typing.NDArray[numpy.float32], trans_a: bool = False, trans_b: bool = False, out: numpy.typing.NDArray[numpy.float32] | None = None, naive: bool = False, stream: bool = False) -> numpy.typing.NDArray[numpy.float32]:
    """
    C = op(a) op(b) (csrc/gemm/gemm.h, gemm); stream: the Epilogue::stream hint (C written once, stored around the caches where it qualifies; for tests).
    """
@typing.overload
def matmul(a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], trans_a: bool = False, trans_b: bool = False, out: numpy.typing.NDArray[numpy.float64] | None = None, naive: bool = False, stream: bool = False) -> numpy.typing.NDArray[numpy.float64]:
    """
    C = op(a) op(b) (csrc/gemm/gemm.h, gemm); stream: the Epilogue::stream hint (C written once, stored around the caches where it qualifies; for tests).
    """
def matmul_bf16(a: numpy.typing.NDArray[numpy.float32], b: numpy.typing.NDArray[numpy.float32], trans_a: bool = False, trans_b: bool = False, out: numpy.typing.NDArray[numpy.float32] | None = None, stream: bool = False) -> numpy.typing.NDArray[numpy.float32]:
    """
    C = bf16(op(a)) bf16(op(b)) in float32 (csrc/gemm/gemm.h, gemm_bf16); stream: the Epilogue::stream hint (for tests).
    """
def matmul_bf16_panel(a: numpy.typing.NDArray[numpy.float32], b: numpy.typing.NDArray[numpy.float32], trans_a: bool = False, trans_b: bool = False, in_blocks: bool = False) -> numpy.typing.NDArray[numpy.float32]:
    """
    matmul_bf16 with op(b) packed first into a Bf16Panel (whole, or in blocks) and read from it (csrc/gemm/gemm.h, gemm_bf16_panel); for tests.
    """
def matmul_direct(a: typing.Any, b: typing.Any, trans_a: typing.Any, trans_b: typing.Any, out: typing.Any, naive: typing.Any) -> typing.Any:
    """
    matmul(a, b, trans_a, trans_b, out, naive) when a, b and out (or None) are C-contiguous arrays of one float type; None, without raising, for anything else (fm.ops.matmul then converts).
    """
@typing.overload
def matmul_pieces(a: numpy.typing.NDArray[numpy.float32], b: numpy.typing.NDArray[numpy.float32], bounds: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], first: typing.SupportsInt | typing.SupportsIndex = 0, total: typing.SupportsInt | typing.SupportsIndex = 0, trans_a: bool = False, trans_b: bool = False) -> tuple[numpy.typing.NDArray[numpy.float32], list[int]]:
    ...
@typing.overload
def matmul_pieces(a: numpy.typing.NDArray[numpy.float64], b: numpy.typing.NDArray[numpy.float64], bounds: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], first: typing.SupportsInt | typing.SupportsIndex = 0, total: typing.SupportsInt | typing.SupportsIndex = 0, trans_a: bool = False, trans_b: bool = False) -> tuple[numpy.typing.NDArray[numpy.float64], list[int]]:
    ...
def optimizer_init_state(config: OptConfig, states: list) -> None:
    """
    Fill the state buffers with their starting values (zeros; Adagrad's sum: initial_accumulator).
    """
def optimizer_state_count(config: OptConfig) -> int:
    """
    How many state buffers, each of the parameters' length, the optimizer needs.
    """
def optimizer_step(config: OptConfig, p: typing.Any, g: typing.Any, states: list, step: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    One optimizer update of p (1-D, C-contiguous) from g, in place, with the state buffers updated too; step is this update's 1-based number.
    """
def permutation(n: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, epoch: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int64]:
    ...
def round_bf16(x: numpy.typing.NDArray[numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    float32 holding bf16(x), round to nearest even (common/bf16.h).
    """
def scan(a: numpy.ndarray) -> typing.Any:
    """
    (all finite, min, max) of a C-contiguous float32/float64/int32/int64/uint8 array in one pass; None for any other array (the caller falls back to NumPy).
    """
def set_isa(isa: str) -> None:
    ...
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def supported_bf16_isas() -> list[str]:
    ...
def supported_isas() -> list[str]:
    ...
__version__: str = '0.1.0'
compiler: str = 'gcc 12.2.0'
