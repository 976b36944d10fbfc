"""Image-folder domains (tlax.data.image_folder)."""

import os

import numpy as np
import pytest
from PIL import Image

from tlax import data
from tlax.data import domains
from tlax.data import image_folder


def _tree(root, spec, size=(12, 10)):
  """spec: {domain: {class: n_images}}; images of solid random colours."""
  rng = np.random.default_rng(0)
  for d, classes in spec.items():
    for c, n in classes.items():
      os.makedirs(root / d / c, exist_ok=True)
      for i in range(n):
        arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(arr).save(root / d / c / f"{i:03d}.{ext}")
  return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TLAX_CACHE_DIR", str(tmp_path / "cache"))
  domains.clear_cache()
  yield
  domains.clear_cache()


def test_tree_as_domains_resized_cached_and_split(tmp_path, monkeypatch):
  root = _tree(tmp_path / "tree", {"a": {"cat": 3, "dog": 4},
                                   "b": {"cat": 2, "dog": 2}})
  dom = data.load_domain("imagefolder/a", image_size=8, root=str(root))
  x, y = dom.splits["train"]
  assert x.shape == (7, 8, 8, 3) and x.dtype == np.float32
  assert dom.class_names == ("cat", "dog") and dom.num_classes == 2
  np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1, 1])
  assert dom.transductive and dom.splits["test"][0] is x
  # Pixel values: PIL's RGB bilinear resize, scaled to [0, 1].
  with Image.open(root / "a" / "dog" / "001.png") as img:
    ref = np.asarray(img.convert("RGB").resize((8, 8), Image.BILINEAR))
  np.testing.assert_allclose(x[4], ref / 255.0, atol=1e-6)
  cached = list((tmp_path / "cache" / "image_folder").glob("a-8x8-*.npz"))
  assert len(cached) == 1
  # A second load reads the cache, decoding nothing.
  domains.clear_cache()
  monkeypatch.setattr(image_folder, "decode_image",
                      lambda *a: pytest.fail("decoded despite the cache"))
  again = data.load_domain("imagefolder/a", image_size=8, root=str(root))
  np.testing.assert_array_equal(again.splits["train"][0], x)
  held = data.load_domain("imagefolder/a", image_size=8, root=str(root),
                          holdout=0.3, seed=1)
  assert len(held.splits["train"][1]) + len(held.splits["test"][1]) == 7
  assert set(held.splits["test"][1]) == {0, 1}


def test_office31_images_subfolder_and_grey_to_rgb(tmp_path):
  root = tmp_path / "office31"
  for d in ("amazon", "webcam"):
    for c in ("bike", "mug"):
      os.makedirs(root / d / "images" / c)
      Image.fromarray(np.full((5, 7), 200, np.uint8), "L").save(
          root / d / "images" / c / "frame_0001.jpg")
  dom = data.load_domain("office31/amazon", image_size=4,
                         data_dir=str(tmp_path))
  assert dom.class_names == ("bike", "mug")
  assert dom.splits["train"][0].shape == (2, 4, 4, 3)


def test_class_folders_that_differ_between_domains(tmp_path):
  root = _tree(tmp_path / "tree", {"a": {"cat": 1, "dog": 1},
                                   "b": {"cat": 1, "cow": 1}})
  with pytest.raises(image_folder.ImageFolderError) as e:
    data.load_domain("imagefolder/a", image_size=4, root=str(root))
  msg = str(e.value)
  assert f"{root / 'b'}: lacks dog; has cow that a lacks" in msg


def test_unreadable_images_and_missing_folders(tmp_path):
  root = _tree(tmp_path / "tree", {"a": {"cat": 2}, "b": {"cat": 1}})
  (root / "a" / "cat" / "broken.jpg").write_bytes(b"not an image")
  with pytest.raises(image_folder.ImageFolderError,
                     match=r"(?s)1 unreadable image.*broken\.jpg"):
    data.load_domain("imagefolder/a", image_size=4, root=str(root))
  with pytest.raises(image_folder.ImageFolderError,
                     match=r"No domain folder .*zzz; the domains of .* are: "
                     r"a, b"):
    data.load_domain("imagefolder/zzz", image_size=4, root=str(root))
  os.makedirs(root / "b" / "empty")
  os.makedirs(root / "a" / "empty")
  with pytest.raises(image_folder.ImageFolderError,
                     match=r"empty holds no image"):
    data.load_domain("imagefolder/b", image_size=4, root=str(root))
  with pytest.raises(ValueError, match=r"option root="):
    data.load_domain("imagefolder/a", image_size=4)
  with pytest.raises(ValueError, match=r"need an image size"):
    data.load_domain("imagefolder/a", root=str(root))
  with pytest.raises(FileNotFoundError, match=r"office_home.*Office-Home"):
    data.load_domain("office_home/Art", image_size=4,
                     data_dir=str(tmp_path / "nowhere"))


def test_pacs(data_dir):
  if not os.path.isdir(os.path.join(data_dir, "pacs")):
    pytest.skip("PACS not in the data folder")
  dom = data.load_domain("pacs/sketch", image_size=16, data_dir=data_dir,
                         max_per_class=3)
  assert dom.class_names == ("dog", "elephant", "giraffe", "guitar", "horse",
                             "house", "person")
  x, y = dom.splits["train"]
  assert x.shape == (21, 16, 16, 3)
  np.testing.assert_array_equal(np.bincount(y), [3] * 7)
  assert 0.0 <= x.min() < 0.8 and x.max() == 1.0  # dark strokes on white
  task = data.make_task("pacs/photo", "pacs/sketch", image_size=16,
                        data_dir=data_dir,
                        domain_options={"max_per_class": 3})
  assert task.num_classes == 7
