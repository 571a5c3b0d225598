"""Load a model folder in vLLM (the engine the Serve apps use) and generate 8 tokens; print a JSON line.

python tests/vllm_check.py MODEL_DIR
"""

import asyncio
import json
import os
import sys


def main() -> None:
    os.environ.update({"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
                       "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "OMP_NUM_THREADS": "2"})  # fmt: skip
    from sphere_ray.serving.engines import VLLMEngine
    from sphere_ray.serving.schema import GenerateRequest

    engine = VLLMEngine(sys.argv[1], "merged", {"dtype": "float32", "enforce_eager": True, "max_model_len": 512})

    async def run():
        return await engine.generate(GenerateRequest(prompts=["What is 3 + 4?"], max_tokens=8, temperature=0.0))

    response = asyncio.run(run())
    sample = response.outputs[0][0]
    print(json.dumps({"model": response.model, "num_tokens": sample.num_tokens, "text": sample.text}))
    engine.shutdown()


if __name__ == "__main__":
    main()
