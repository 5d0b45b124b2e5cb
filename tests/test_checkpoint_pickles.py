"""focal_mm's checkpoint reader on every supported torch: an mmengine runner
checkpoint (what a backbone's ``init_cfg.checkpoint`` gets when one starts a
detector from one's own classifier) loads, in the zip and the legacy format;
any other pickled object is refused. From torch 2.6 torch's weights-only
unpickler does this with mmengine's types added; before, the restricted
pickle module of focal_mm.checkpoints.safe_globals."""
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import HistoryBuffer

from focal_mm.checkpoints.pretrained import read_checkpoint


def runner_checkpoint() -> dict:
    buffer = HistoryBuffer()
    buffer.update(np.float64(0.5))
    return dict(
        meta=dict(epoch=2, seed=np.int64(3), cfg=ConfigDict(a=1)),
        message_hub=dict(log_scalars={'loss': buffer}),
        state_dict={'backbone.w': torch.arange(3.)},
        ema=np.arange(4.))


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_runner_checkpoint_loads(tmp_path, zip_format):
    path = tmp_path / 'epoch_2.pth'
    torch.save(
        runner_checkpoint(), path, _use_new_zipfile_serialization=zip_format)
    loaded = read_checkpoint(str(path))
    assert torch.equal(loaded['state_dict']['backbone.w'], torch.arange(3.))
    assert loaded['meta']['seed'] == 3
    assert loaded['meta']['cfg'] == ConfigDict(a=1)
    assert loaded['message_hub']['log_scalars']['loss'].current() == 0.5
    assert np.array_equal(loaded['ema'], np.arange(4.))


class _GetattrExploit:
    """Unpickles to getattr(HistoryBuffer, '__init__'): not a statistic."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


class _MakeDirectory:
    """Unpickles to a call of os.mkdir: code run from the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import os
        return (os.mkdir, (self.path, ))


@pytest.mark.parametrize('payload', ['config', 'getattr', 'mkdir'])
@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_other_pickled_objects_are_refused(tmp_path, payload, zip_format):
    marker = tmp_path / 'made_by_the_pickle'
    obj = dict(
        config=Config(dict(a=1)),
        getattr=_GetattrExploit(),
        mkdir=_MakeDirectory(marker))[payload]
    path = tmp_path / 'evil.pth'
    torch.save({'obj': obj}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ValueError, match='holds pickled Python objects'):
        read_checkpoint(str(path))
    assert not marker.exists()
