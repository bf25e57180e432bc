"""DQN-style RL on a slippery chain: episodes, epsilon decay, a collections.deque replay
buffer sampled with python random, a target network synced every few episodes."""
import copy
import random
from collections import deque

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


class Chain:
    """Move left/right on n states; reaching the right end pays 1. Actions slip at random."""

    def __init__(self, n, seed):
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.s = 0

    def reset(self):
        self.s = 0
        return self.s

    def step(self, a):
        if self.rng.random() < 0.1:
            a = 1 - a
        self.s = min(self.n - 1, self.s + 1) if a == 1 else max(0, self.s - 1)
        done = self.s == self.n - 1
        return self.s, (1.0 if done else -0.01), done


def onehot(s, n=6):
    v = torch.zeros(n)
    v[s] = 1.0
    return v


seed = flor.arg("seed", 3)
episodes = flor.arg("episodes", 12)
eps_decay = flor.arg("eps_decay", 0.8)
gamma = flor.arg("gamma", 0.9)
sync_every = flor.arg("sync_every", 3)
random.seed(seed)
torch.manual_seed(seed)
env = Chain(6, seed)
q = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
target = copy.deepcopy(q)
optimizer = torch.optim.Adam(q.parameters(), lr=0.01)
buffer = deque(maxlen=400)
eps = 1.0

with flor.checkpointing(q=q, target=target, optimizer=optimizer):
    for episode in flor.loop("episode", range(episodes)):
        s = env.reset()
        ret = 0.0
        for t in flor.loop("t", range(25)):
            if random.random() < eps:
                a = random.randrange(2)
            else:
                with torch.no_grad():
                    a = int(q(onehot(s)).argmax())
            s2, r, done = env.step(a)
            buffer.append((s, a, r, s2, done))
            ret += r
            s = s2
            if len(buffer) >= 32:
                batch = random.sample(buffer, 32)
                states = torch.stack([onehot(b[0]) for b in batch])
                actions = torch.tensor([b[1] for b in batch])
                rewards = torch.tensor([b[2] for b in batch])
                nexts = torch.stack([onehot(b[3]) for b in batch])
                dones = torch.tensor([float(b[4]) for b in batch])
                with torch.no_grad():
                    target_q = rewards + gamma * (1 - dones) * target(nexts).max(1).values
                q_sa = q(states).gather(1, actions[:, None]).squeeze(1)
                loss = F.smooth_l1_loss(q_sa, target_q)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if done:
                break
        eps = max(0.05, eps * eps_decay)
        if episode % sync_every == 0:
            target.load_state_dict(q.state_dict())
        flor.log("return", ret)
