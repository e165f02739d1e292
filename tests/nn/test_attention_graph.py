"""The Transformer encoder drawn by make_dot: one cluster per layer holding one per sublayer,
and with collapse=True one node per sublayer (`tensorgrad graph --model transformer`)."""

import re

from nn.cli import main
from nn.graph import transformer_graph


def test_one_cluster_per_layer_and_sublayer():
    source = transformer_graph(steps=4, num_layers=2).source
    clusters = re.findall(r'graph \[label="([^"]+)"', source)
    assert clusters == ["layers.0", "self_attn", "feed_forward", "layers.1", "self_attn", "feed_forward"]
    assert "layers.1.self_attn.in_proj_weight" in source and "layers.0.linear2.weight" in source


def test_collapse_draws_one_node_per_sublayer():
    source = transformer_graph(steps=4, num_layers=3, collapse=True).source
    scopes = re.findall(r'class=scope tooltip="([^"]+)"', source)
    sublayers = ("self_attn", "feed_forward")
    assert scopes == [f"layers.{i}/{sublayer}" for i in range(3) for sublayer in sublayers]
    assert "class=function" in source  # the loss outside the layers is drawn op by op


def test_graph_command_draws_a_transformer(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["graph", "--model", "transformer", "--steps", "3", "--collapse", "--out", str(out)]) == 0
    assert out.read_text().count("class=scope") == 4
    assert "3-step TRANSFORMER" in capsys.readouterr().out
