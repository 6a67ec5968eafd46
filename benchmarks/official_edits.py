"""The smallest edits that let the official DivideMix code run here, as its PEER.md lists them.

Each edit is an exact text replacement that must match once (a changed peer fails loudly, never
silently unedited). None touches the algorithm: where the code runs, Python 3's `next`, the real
data sizes, the AUC that is only logged, flags for the epochs and workers, the model choice, and
timing prints (`BENCH {json}` lines: the warm-up epoch; per DivideMix epoch its division, the
training of each network, the test and the steps).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "DivideMix-official"

MODEL = '''
def create_model():
    if os.environ.get('BENCH_MODEL') == 'cnn_small':  # bench: this project's layer definition
        from dividemix.method.models import cnn_small
        model = cnn_small(args.num_class, 3)
    else:
        model = ResNet18(num_classes=args.num_class)
    model = model.to(DEVICE)
    return model
'''

TRAIN_EDITS = [  # (old, new) in Train_cifar.py
    ("parser.add_argument('--dataset', default='cifar10', type=str)\n",
     "parser.add_argument('--dataset', default='cifar10', type=str)\n"
     "parser.add_argument('--warm_up', default=None, type=int)\n"
     "parser.add_argument('--num_workers', default=5, type=int)\n"),
    ("torch.cuda.set_device(args.gpuid)\n",
     "import time, json\nDEVICE = torch.device(os.environ.get('BENCH_DEVICE', 'cuda'))\n"
     "torch.set_num_threads(int(os.environ.get('BENCH_THREADS', torch.get_num_threads())))\n"
     "if DEVICE.type == 'cuda':\n    torch.cuda.set_device(args.gpuid)\n"),
    ("inputs_u, inputs_u2 = unlabeled_train_iter.next()\n        except:",
     "inputs_u, inputs_u2 = next(unlabeled_train_iter)\n        except StopIteration:"),
    ("            inputs_u, inputs_u2 = unlabeled_train_iter.next()", "            inputs_u, inputs_u2 = next(unlabeled_train_iter)"),
    ("    losses = torch.zeros(50000)", "    losses = torch.zeros(len(eval_loader.dataset))"),
    ("def create_model():\n    model = ResNet18(num_classes=args.num_class)\n    model = model.cuda()\n    return model\n", MODEL),
    ("    warm_up = 10\n", "    warm_up = 10\nif args.warm_up is not None:\n    warm_up = args.warm_up\n"),
    ("batch_size=args.batch_size,num_workers=5,", "batch_size=args.batch_size,num_workers=args.num_workers,"),
    ("    test_loader = loader.run('test')\n", "    sync(); t_epoch = time.perf_counter()\n    test_loader = loader.run('test')\n"),
    ("        warmup(epoch,net2,optimizer2,warmup_trainloader) \n",
     "        warmup(epoch,net2,optimizer2,warmup_trainloader) \n        test(epoch,net1,net2)\n        sync()\n"
     "        print('BENCH ' + json.dumps({'phase': 'warmup', 'seconds': time.perf_counter() - t_epoch}))\n"
     "        continue\n"),
    ("        prob2,all_loss[1]=eval_train(net2,all_loss[1])          \n",
     "        prob2,all_loss[1]=eval_train(net2,all_loss[1])          \n        sync(); t_division = time.perf_counter()\n"),
    ("        train(epoch,net1,net2,optimizer1,labeled_trainloader, unlabeled_trainloader) # train net1  \n",
     "        steps = len(labeled_trainloader)\n"
     "        train(epoch,net1,net2,optimizer1,labeled_trainloader, unlabeled_trainloader) # train net1  \n"),
    ("        train(epoch,net2,net1,optimizer2,labeled_trainloader, unlabeled_trainloader) # train net2         \n",
     "        steps += len(labeled_trainloader)\n"
     "        train(epoch,net2,net1,optimizer2,labeled_trainloader, unlabeled_trainloader) # train net2         \n"
     "        sync(); t_train = time.perf_counter()\n"),
    ("    test(epoch,net1,net2)  \n",
     "    test(epoch,net1,net2)  \n    sync(); t_end = time.perf_counter()\n"
     "    print('BENCH ' + json.dumps({'phase': 'dividemix', 'division': t_division - t_epoch, "
     "'train': t_train - t_division, 'test': t_end - t_train, 'total': t_end - t_epoch, 'steps': steps, "
     "'labeled': [int(pred1.sum()), int(pred2.sum())]}))\n"),
]

SYNC = "def sync():\n    if DEVICE.type == 'cuda':\n        torch.cuda.synchronize()\n\n\n# Training\n"

LOADER_EDITS = [  # (old, new) in dataloader_cifar.py
    ("from torchnet.meter import AUCMeter\n",
     "from sklearn.metrics import roc_auc_score\n\n\nclass AUCMeter:  # bench: torchnet's meter (only logged) by sklearn\n"
     "    def reset(self):\n        pass\n\n    def add(self, output, target):\n"
     "        self.output, self.target = np.asarray(output), np.asarray(target)\n\n    def value(self):\n"
     "        ok = 0 < self.target.sum() < len(self.target)\n"
     "        return (roc_auc_score(self.target, self.output) if ok else float('nan')), None, None\n"),
    ("self.test_data.reshape((10000, 3, 32, 32))", "self.test_data.reshape((-1, 3, 32, 32))", 2),  # CIFAR-10, -100
    ("train_data = train_data.reshape((50000, 3, 32, 32))", "train_data = train_data.reshape((-1, 3, 32, 32))"),
    ("                idx = list(range(50000))", "                idx = list(range(len(train_label)))"),
    ("                num_noise = int(self.r*50000)", "                num_noise = int(self.r*len(train_label))"),
    ("                for i in range(50000):", "                for i in range(len(train_label)):"),
]


def _apply(text: str, edits: list[tuple], name: str) -> str:
    """Each (old, new[, times]) replaced; `old` must occur exactly `times` (default 1) times."""
    for old, new, *times in edits:
        expected = times[0] if times else 1
        if (count := text.count(old)) != expected:
            raise SystemExit(f"{name}: the edit for {old.strip()[:60]!r} matches {count} times, expected {expected}")
        text = text.replace(old, new)
    return text


def edit_official(peer: Path, dest: Path) -> Path:
    """A copy of the peer in `dest`, edited; returns `dest` (run Train_cifar.py there)."""
    shutil.copytree(peer, dest, ignore=shutil.ignore_patterns("*.md", "LICENSE"))
    train = _apply((dest / "Train_cifar.py").read_text(), TRAIN_EDITS, "Train_cifar.py")
    train = train.replace("# Training\n", SYNC, 1)
    train = re.sub(r"\.cuda\(\)", ".to(DEVICE)", train)  # models, batches, the prior
    (dest / "Train_cifar.py").write_text(train)
    loader = _apply((dest / "dataloader_cifar.py").read_text(), LOADER_EDITS, "dataloader_cifar.py")
    (dest / "dataloader_cifar.py").write_text(loader)
    (dest / "checkpoint").mkdir()  # its logs go there
    return dest
