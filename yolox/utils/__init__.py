from .boxes import (bboxes_iou, cxcywh2xyxy, level_sizes, level_topk_postprocess, multilabel_postprocess, postprocess,
                    xyxy2cxcywh, xyxy2xywh)
from .checkpoint import CheckpointError, atomic_torch_save, load_checkpoint_file, load_ckpt, save_checkpoint
from .dist import (all_gather_object, all_reduce_norm, all_reduce_sum, get_local_rank, get_rank, get_world_size,
                   is_main_process, reduce_mean, synchronize)
from .ema import ModelEMA, unwrap_model
from .logger import setup_logger
from .lr_scheduler import LRScheduler
from .metric import AverageMeter, MeterBuffer
from .model_utils import freeze_module, get_model_info, model_flops_params
from .setup_env import configure_omp, resolve_device, seed_everything
from .visualize import class_color, vis
from .errors import YOLOXError
