package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.List;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

/** The trainer's right-padded batches score exactly what the examples score one by one. */
class CausalLmBatchTest {
    @Test
    void paddingNeitherAttendsNorIsScoredAndLongExamplesKeepTheirStart() {
        EngineRuntime runtime = EngineRuntime.start(2);
        ai.djl.engine.Engine.getInstance().setRandomSeed(3);
        Gpt2LmModel lm = new Gpt2LmModel(Gpt2Config.of(50, 16, 32, 2, 4));
        try (Model model = Model.newInstance("gpt2", runtime.device(), EngineRuntime.ENGINE)) {
            lm.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 1));
            model.setBlock(lm);
            LmExample shortOne = LmExample.of(5, 6, 7, 8);
            LmExample prompted =
                    new LmExample(
                            new long[] {9, 9, 1, 2, 3, 4, 10, 11, 12},
                            new long[] {-100, -100, -100, 2, 3, 4, 10, 11, 12});
            LmExample tooLong = LmExample.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
            try (NDManager m = model.getNDManager().newSubManager()) {
                CausalLmTrainer.Batch b =
                        CausalLmTrainer.Batch.of(m, List.of(shortOne, prompted, tooLong), 10);
                assertThat(b.ids().getShape()).isEqualTo(new Shape(3, 10));
                assertThat(b.tokens()).isEqualTo(4 + 9 + 10);
                assertThat(b.labels().toLongArray())
                        .startsWith(5, 6, 7, 8, -100, -100, -100, -100, -100, -100);
                NDArray logits =
                        lm.forward(
                                        new ParameterStore(m, false),
                                        new NDList(b.ids(), b.mask()),
                                        false)
                                .singletonOrThrow();
                NDArray[] batch = CausalLmLoss.sumAndCount(logits, b.labels());

                double sum = 0;
                double count = 0;
                LmExample truncated = LmExample.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
                for (LmExample e : List.of(shortOne, prompted, truncated)) {
                    Shape s = new Shape(1, e.inputIds().length);
                    NDArray l =
                            lm.forward(
                                            new ParameterStore(m, false),
                                            new NDList(m.create(e.inputIds(), s)),
                                            false)
                                    .singletonOrThrow();
                    NDArray[] one = CausalLmLoss.sumAndCount(l, m.create(e.labels(), s));
                    sum += one[0].getFloat();
                    count += one[1].getFloat();
                }
                assertThat(count).isEqualTo(3 + 6 + 9);
                assertThat((double) batch[1].getFloat()).isEqualTo(count);
                assertThat((double) batch[0].getFloat()).isCloseTo(sum, Offset.offset(1e-3));
            }
        }
    }
}
