"""A small bilingual retrieval dev set for the bundled report, written by reading pages: (question, lang, pages that
answer it). Used by the retrieval tests and `python -m reportqa.index.measure`; the eval stage owns the real QA set.
The `chart` flag marks Chinese questions whose answer is printed only in the English chart labels of the page."""

from __future__ import annotations

from typing import NamedTuple


class DevQuestion(NamedTuple):
    question: str
    lang: str
    pages: tuple[int, ...]
    chart: bool = False


DEV_QUESTIONS: list[DevQuestion] = [
    # --- English ---
    DevQuestion("How many weekly active users did ChatGPT have by April 2025?", "en", (55, 19, 4)),
    DevQuestion("How much faster than Google did ChatGPT reach 365 billion annual searches?", "en", (20,)),
    DevQuestion("How many days did it take ChatGPT to reach 1 million users, compared with the iPhone?", "en", (58,)),
    DevQuestion("How many years did Netflix need to reach 100 million users?", "en", (57,)),
    DevQuestion("How much did the number of AI startups in NVIDIA's ecosystem grow from 2021 to 2025?", "en", (61,)),
    DevQuestion("What was the 2024 capital expenditure of the Big Six US tech companies?", "en", (97, 4)),
    DevQuestion("How fast has the training dataset size of AI models grown per year?", "en", (14,)),
    DevQuestion("When did industry overtake academia in releasing notable machine learning models?", "en", (37,)),
    DevQuestion("How many more computing-related patents were granted per year in the USA?", "en", (40,)),
    DevQuestion("How long did it take to build xAI's Colossus data center?", "en", (122,)),
    DevQuestion("By how much has the energy needed to generate a token on NVIDIA GPUs fallen?", "en", (136,)),
    DevQuestion("How fast did NVIDIA's quarterly revenue grow year over year?", "en", (160,)),
    DevQuestion("How does OpenAI's compute expense compare with its revenue?", "en", (173,)),
    DevQuestion("What share of San Francisco rideshares does Waymo have?", "en", (302,)),
    DevQuestion("How many acres has the Carbon Robotics LaserWeeder weeded?", "en", (306,)),
    DevQuestion("How many monthly active users did the ChatGPT mobile app reach?", "en", (315,)),
    DevQuestion("How much did AI job postings grow compared with non-AI IT jobs?", "en", (332,)),
    DevQuestion("What did Jensen Huang say about losing your job to AI?", "en", (336,)),
    DevQuestion("How many site visits does chatgpt.com get?", "en", (257,)),
    DevQuestion("Which six companies stayed among the 30 most valuable public companies since 1995?", "en", (276,)),
    DevQuestion("When was the printing press invented?", "en", (23,)),
    DevQuestion("How much did NVIDIA GPU performance improve over eight years?", "en", (106,)),
    DevQuestion("Who described AI as 'our space race'?", "en", (8, 271)),
    DevQuestion("How does China's industrial robot installed base compare with the rest of the world?", "en", (289,)),
    DevQuestion("Which LLM has the highest daily query volume according to Google?", "en", (296,)),
    DevQuestion("How many Starlink subscribers does SpaceX have?", "en", (320,)),
    DevQuestion("How long does it take new technologies to reach 50% of US households?", "en", (59,)),
    DevQuestion("Why do data centers strain the electricity grid?", "en", (125, 126, 127)),
    # --- Chinese ---
    DevQuestion("ChatGPT 达到100万用户用了多少天？", "zh", (58,), chart=True),
    DevQuestion("2024年美国六大科技公司的资本支出是多少？", "zh", (97, 4), chart=True),
    DevQuestion("截至2025年4月，ChatGPT 的周活跃用户有多少？", "zh", (55, 19, 4), chart=True),
    DevQuestion("英伟达生态系统里的 AI 初创公司有多少家？", "zh", (61,), chart=True),
    DevQuestion("Netflix 用了多少年才达到1亿用户？", "zh", (57,), chart=True),
    DevQuestion("xAI 的 Colossus 数据中心建了多少天？", "zh", (122,)),
    DevQuestion("英伟达 GPU 生成每个 token 所需的能耗下降了多少？", "zh", (136,)),
    DevQuestion("英伟达的季度收入同比增长了多少？", "zh", (160,)),
    DevQuestion("Waymo 在旧金山网约车市场的份额是多少？", "zh", (302,)),
    DevQuestion("ChatGPT 移动应用的月活跃用户达到了多少？", "zh", (315,)),
    DevQuestion("黄仁勋怎么看人工智能对工作的影响？", "zh", (336,)),
    DevQuestion("chatgpt.com 的网站访问量有多少？", "zh", (257,), chart=True),
    DevQuestion("美国每年授予的计算相关专利增加了多少项？", "zh", (40,), chart=True),
    DevQuestion("AI 模型的训练数据集规模每年增长多少？", "zh", (14,)),
    DevQuestion("印刷机是哪一年发明的？", "zh", (23,)),
    DevQuestion("中国安装的工业机器人数量和世界其他地区相比如何？", "zh", (289,)),
    DevQuestion("OpenAI 的计算支出和收入相比怎么样？", "zh", (173,)),
    DevQuestion("Carbon Robotics 的激光除草机已经除草多少英亩？", "zh", (306,)),
    DevQuestion("AI 职位发布在七年里增长了多少？", "zh", (332,), chart=True),
    DevQuestion("1995年到2025年间一直位列全球市值前30的公司有哪些？", "zh", (276,)),
    DevQuestion("英伟达 GPU 八年内性能提升了多少倍？", "zh", (106,)),
    DevQuestion("哪个大语言模型的每日查询量最高？", "zh", (296,)),
    DevQuestion("Blackwell 的年度 token 收入是多少？", "zh", (106,), chart=True),
    DevQuestion("SpaceX 的 Starlink 有多少订阅用户？", "zh", (320,)),
    DevQuestion("Waymo 无人驾驶汽车的付费乘车数据来自哪里？", "zh", (302,)),
    DevQuestion("新技术达到美国一半家庭普及需要多长时间？", "zh", (59,)),
]
