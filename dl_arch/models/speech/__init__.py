"""Speech: keyword spotting and character CTC transcription on log-mel features.

Features come from the task (`dl_arch.models.layers.log_mel`), so every model is a pure
function of `(features_BTF, frame_len_B)`; padding frames never change a real frame's output.
  CTC models: `model.apply(variables, features_BTF, frame_len_B, train=...) -> (logits
    [B, T', vocab] float32, out_len [B] int32)`, T' the subsampled length.
  Keyword models: `model.apply(variables, features_BTF, frame_len_B, train=...) -> logits
    [B, num_classes] float32`.

Registered names (default size / tiny CPU variant):
  kws_cnn / kws_cnn_tiny                 conv blocks, masked mean over time
  kws_crnn / kws_crnn_tiny               conv blocks, GRU over time
  deepspeech2 / deepspeech2_tiny         strided 2-D convs, bidirectional LSTM/GRU stack
  transformer_ctc / transformer_ctc_tiny conv subsampling, Transformer encoder blocks
  conv_ctc / conv_ctc_tiny               strided 2-D convs, then 1-D time convolutions
"""

from dl_arch.models.speech.conv_ctc import ConvCTC
from dl_arch.models.speech.deepspeech2 import DeepSpeech2
from dl_arch.models.speech.kws import KeywordCNN, KeywordCRNN
from dl_arch.models.speech.transformer_ctc import TransformerCTC

__all__ = ["ConvCTC", "DeepSpeech2", "KeywordCNN", "KeywordCRNN", "TransformerCTC"]
