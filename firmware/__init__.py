"""hls4ml conversion of registered models, emulation checks, precision and resource studies.

Submodules (imported on demand; hls4ml and torch are loaded only when used):

* ``convert``    -- reviewed YAML build configs -> hls4ml config; conversion; pitfalls
  (what a model's score network is comes from its kind: ``models.kinds`` firmware plans)
* ``emulation``  -- compiled C++ emulation vs onnxruntime: correlation, decision agreement
* ``precision``  -- per-layer profiling and the ap_fixed<W,I> width scan
* ``pruning``    -- magnitude pruning with fine-tuning, and what it saves in multipliers
* ``resources``  -- DSP/LUT/latency estimates; real reports with Vitis/Vivado HLS
* ``targets``    -- registry of FPGA parts (register_target / get_target / available_targets)
* ``source``     -- ``ModelSource``: what a build is made from (model, samples, thresholds)
* ``build``      -- one build: resolve MODEL[:VERSION], convert, compile, validate, report
* ``registry_adapter`` -- registered models as build sources (or their kind's refusal)
* ``validation_set`` -- the held-out validation set shipped beside a model card (or drawn)
* ``l1_menu``    -- the build's L1 menu (seeds in fixed-point score units) and its library
* ``standin``    -- registry of small stand-in models and synthetic samples of the same
  architectures
"""

__all__ = ["build", "convert", "emulation", "l1_menu", "precision", "pruning",
           "registry_adapter", "resources", "source", "standin", "targets", "validation_set"]
