"""Answer parsing for generative models: each table row is (response, expected option index or None)."""

import pytest

from unisim_tasks.tasks.parsing import option_names, parse_answer

# img2afc: image 1 is the reference; (A) Image 2, (B) Image 3.
IMG2AFC = [
    ("A", 0),
    ("B", 1),
    ("(A)", 0),
    ("(B)", 1),
    ("A.", 0),
    ("B)", 1),
    ("a", 0),
    ("b.", 1),
    ("Answer: B", 1),
    ("The answer is (A).", 0),
    ("Option B", 1),
    ("B) Image 3", 1),
    ("(A) Image 2", 0),
    ("Image 2", 0),
    ("image 3", 1),
    ("Image 3.", 1),
    ("the second image", 0),
    ("The third image is more similar to the reference.", 1),
    ("Image two", 0),
    ("Image #3", 1),
    ("2", 0),
    ("3", 1),
    ("**B**", 1),
    ("  \n (A) \n", 0),
    ("<answer>B</answer>", 1),
    ("（B）", 1),
    ("B. Image 3 is more similar because both show a red car parked on a street.", 1),
    ("Image 2 shows a dog on grass like the reference, Image 3 shows a cat. So the answer is A.", 0),
    ("Image 1 is the reference, so Image 3 is closer.", 1),
    ("Image 3 is more similar to the reference image than Image 2.", 1),
    ("Compared to Image 3, Image 2 is closer to the reference.", 0),
    ("I think the answer is B.", 1),
    ("Answer: Image 3", 1),
    ("The image that is more similar to the reference is image 3.", 1),
    ("B\n\nExplanation: Image 2 has a different layout, while Image 3 matches the reference.", 1),
    ("The correct option is (B) Image 3.", 1),
    ("A. Image 3 differs in color, so Image 2 is more similar.", 0),
    ("Final answer: \\boxed{A}", 0),
    ("Image 3 (B)", 1),
    ("I would choose Image 2.", 0),
    ("Left", 0),
    ("Image 2 is closer to image 1 because image 3 has a different background.", 0),
    ("Image-3", 1),
    # a stated choice wins over options named after it; "worse/less ... than" picks the other option
    ("(B) Image 3 is more similar to the reference than (A) Image 2.", 1),
    ("The correct answer is (A) Image 2 because (B) Image 3 has a different background.", 0),
    ("(A) Image 2 is less similar to the reference than (B) Image 3.", 1),
    ("Image 3 is more similar to Image 1 than Image 2 is; Image 2 has a different layout.", 1),
    ("Not (A) Image 2 but (B) Image 3.", 1),
    ("Image 3 has more red than Image 2, so Image 2 is closer.", 0),  # not a comparison of similarity
    # no valid or no decisive answer
    ("", None),
    ("1", None),
    ("Image 1", None),
    ("Image 1 is the reference image.", None),
    ("The first image is the reference.", None),
    ("(A) Image 2 (B) Image 3", None),
    ("A or B", None),
    ("B) Image 2", None),  # the letter and its echoed option text disagree
    ("C", None),
    ("The answer is C.", None),
    ("Both images are equally similar to the reference.", None),
    ("Image 2 and Image 3 both look similar to Image 1.", None),
    ("A photo of a mountain lake at sunset.", None),
    ("A. Image 2\nB. Image 3", None),
    ("(A) Image 2, (B) Image 3", None),
]

# it2afc: (A) Image 1, (B) Image 2.
IT2AFC = [
    ("A", 0),
    ("B", 1),
    ("(B)", 1),
    ("A)", 0),
    ("b", 1),
    ("(a)", 0),
    ("Answer: A", 0),
    ("The answer is (B).", 1),
    ("Option A", 0),
    ("(A) Image 1", 0),
    ("B) Image 2", 1),
    ("Image 1", 0),
    ("image 2", 1),
    ("image2", 1),
    ("Image one", 0),
    ("Image #2", 1),
    ("1", 0),
    ("2", 1),
    ("The first image", 0),
    ("The second image is more aligned with the caption.", 1),
    ("The more aligned image is the second one.", 1),
    ("**A**", 0),
    ("<answer>A</answer>", 0),
    ("A\n", 0),
    ("answer: b", 1),
    ("A. Image 1 shows two dogs playing in the snow, which matches the caption.", 0),
    ("Image 2 better matches the caption than Image 1.", 1),
    ("Image 1 shows a cat but the caption mentions a dog, so the answer is B.", 1),
    ("Left", 0),
    ("The image on the right.", 1),
    ("The right image", 1),
    ("I think B is more aligned.", 1),
    ("B is more aligned with the caption than A.", 1),
    ("Image 2, because it shows a red bus.", 1),
    (
        (
            "The caption describes a sunset. Image 2 depicts a sunset over the ocean while Image 1 is a city "
            "at night. Therefore, Image 2 is more aligned."
        ),
        1,
    ),
    ("I'd go with Image 1.", 0),
    ("The correct answer is B) Image 2", 1),
    ("Image 1 is more aligned with the reference caption 'A dog running on a beach'.", 0),
    ("Image 1 matches better because Image 2 shows a cat instead of a dog.", 0),
    ("### Answer\n**(B) Image 2**", 1),
    ("(B) Image 2 is more aligned with the caption than (A) Image 1.", 1),
    ("The answer is (A) Image 1, since (B) Image 2 shows a cat.", 0),
    ("(A) Image 1 is less aligned with the caption than (B) Image 2.", 1),
    ("Image 2 matches the caption better than Image 1. Image 1 shows a cat.", 1),
    # no valid or no decisive answer
    ("", None),
    ("3", None),
    ("C", None),
    ("Image 3", None),
    ("(A) Image 1 (B) Image 2", None),
    ("Image 1 or Image 2", None),
    ("Neither image matches the caption.", None),
    ("Neither Image 1 nor Image 2 matches the caption.", None),
    ("Both images match the caption equally well.", None),
    ("A man riding a horse on a beach.", None),
    ("The answer is not clear.", None),
    ("(A) Image 1 or (B) Image 2", None),
]

# text2afc: (A) Caption 1, (B) Caption 2; "image" is the reference, never an option.
TEXT2AFC = [
    ("A", 0),
    ("B", 1),
    ("(A)", 0),
    ("B.", 1),
    ("a", 0),
    ("（A）", 0),
    ("Answer: B", 1),
    ("The answer is (A).", 0),
    ("Option B", 1),
    ("Option A: Caption 1", 0),
    ("(A) Caption 1", 0),
    ("B) Caption 2", 1),
    ("Caption 1", 0),
    ("caption 2", 1),
    ("Caption two", 1),
    ("Caption #1", 0),
    ("description 2", 1),
    ("1", 0),
    ("2", 1),
    ("The first caption", 0),
    ("the 2nd caption", 1),
    ("The second caption better describes the image.", 1),
    ("The first one", 0),
    ("The second one.", 1),
    ("**B**", 1),
    ("<answer>A</answer>", 0),
    ("A. Caption 1 accurately describes the two people sitting on the bench.", 0),
    ("Caption 2 is a better match than caption 1.", 1),
    ("The image shows a dog catching a frisbee, so caption 2 is better.", 1),
    (
        (
            "Caption 1: 'A man riding a bike.' Caption 2: 'A woman walking a dog.' The image shows a man on a "
            "bike, so the answer is A."
        ),
        0,
    ),
    ("The reference image matches caption 2 better than caption 1.", 1),
    ("B\nThe image depicts a snowy mountain, which caption 2 mentions.", 1),
    ("I think A is the better caption.", 0),
    ("A better caption would be caption 2.", 1),
    ("Caption 2, since the image shows three birds.", 1),
    ("Answer - Caption 1", 0),
    ("The answer is caption 1 because it mentions the red umbrella.", 0),
    ("Caption one fits better.", 0),
    ("Caption 1 fits the image better, as caption 2 mentions a cat that is not there.", 0),
    ("(B) Caption 2 describes the image better than (A) Caption 1.", 1),
    ("The correct answer is (A) Caption 1 because (B) Caption 2 mentions a cat.", 0),
    ("(A) Caption 1 is less accurate than (B) Caption 2.", 1),
    # no valid or no decisive answer
    ("", None),
    ("C", None),
    ("Caption 3", None),
    ("Image 2", None),
    ("(A) Caption 1 (B) Caption 2", None),
    ("Caption 1 or Caption 2", None),
    ("Both captions describe the image well.", None),
    ("A dog is playing with a frisbee in the park.", None),
    ("Neither caption 1 nor caption 2 is accurate.", None),
    ("A. Caption 1\nB. Caption 2", None),
    ("(A) Caption 1 and (B) Caption 2 both describe the image.", None),
]

# iqa: (A) Image 1, (B) Image 2, "which image has a better quality?"
IQA = [
    ("A", 0),
    ("B", 1),
    ("(B)", 1),
    ("A.", 0),
    ("b)", 1),
    ("\n\nB\n", 1),
    ("Answer: A", 0),
    ("answer: a", 0),
    ("Final Answer: B", 1),
    ("The answer is (B).", 1),
    ("The answer is: **(A) Image 1**", 0),
    ("Option A", 0),
    ("(B) Image 2", 1),
    ("Image 1", 0),
    ("image 2", 1),
    ("Image two", 1),
    ("Image #1", 0),
    ("1", 0),
    ("2.", 1),
    ("The first image has better quality.", 0),
    ("The second image", 1),
    ("The better quality image is the first one.", 0),
    ("**A**", 0),
    ("<answer>B</answer>", 1),
    ("B. Image 2 is sharper and has less noise.", 1),
    ("B, as image 2 is sharper.", 1),
    ("Image 2 (B)", 1),
    ("Image 1 is blurry and noisy, while Image 2 is clear, so the answer is B.", 1),
    ("Image 2 has better quality than Image 1.", 1),
    ("Compared to Image 2, Image 1 has higher quality.", 0),
    ("The quality of image 2 is better.", 1),
    ("Image 1 is better in quality because it has fewer compression artifacts.", 0),
    ("The left image", 0),
    ("The image on the right has better quality.", 1),
    ("I would say Image 2 has better quality.", 1),
    ("Image 2 is of higher quality, not image 1.", 1),
    ("Image 1 looks better, since image 2 is heavily compressed.", 0),
    ("Hmm, A.", 0),
    ("B: Image 2\nReason: Image 1 is blurry.", 1),
    ("(B) Image 2 has better quality than (A) Image 1.", 1),
    ("The correct answer is (A) Image 1 because (B) Image 2 is blurry.", 0),
    ("(A) Image 1 has worse quality than (B) Image 2.", 1),
    ("Image 1 has lower quality than Image 2.", 1),
    ("A is worse than B.", 1),
    ("Image 2 has better quality than Image 1. Image 1 is blurry.", 1),
    ("Image 1 has less noise than Image 2.", 0),  # "less" before a flaw is better
    ("B. Image 1 is blurrier than Image 2.", 1),
    ("not (A) Image 1 but (B) Image 2", 1),
    ("(A) Image 1 (B) Image 2\nAnswer: B", 1),
    # no valid or no decisive answer
    ("", None),
    ("C", None),
    ("Image 3", None),
    ("A) Image 2", None),
    ("(A) Image 1 (B) Image 2", None),
    ("Both images have similar quality.", None),
    ("A high-quality image.", None),
    ("It's hard to tell; both are noisy.", None),
    ("Image 1 and image 2 are both blurry.", None),
    ("A and B", None),
    ("(A) Image 1\n(B) Image 2", None),
    ("a) Image 1 b) Image 2", None),
    ("Both (A) Image 1 and (B) Image 2 are blurry.", None),
]

# paa: (A) Image 1, (B) Image 2, "which image is brighter / more colorful / has more contrast / sharper?"
PAA = [
    ("A", 0),
    ("B", 1),
    ("(A)", 0),
    ("B.", 1),
    ("b", 1),
    ("Answer: A", 0),
    ("answer: a", 0),
    ("**Answer:** (B) Image 2", 1),
    ("The answer is (B).", 1),
    ("The answer is Image 2 because it has higher contrast.", 1),
    ("Option B", 1),
    ("(A) Image 1", 0),
    ("B) Image 2", 1),
    ("Image 1", 0),
    ("image 2", 1),
    ("Image1", 0),
    ("Image one", 0),
    ("Image #2", 1),
    ("1", 0),
    ("2", 1),
    ("The first image is brighter.", 0),
    ("The 1st image", 0),
    ("The second image is more colorful.", 1),
    ("The second one", 1),
    ("**B**", 1),
    ("<answer>A</answer>", 0),
    ("A. Image 1 is brighter overall, with lighter shadows.", 0),
    ("Image 2 is brighter than Image 1.", 1),
    ("Image 1 has more contrast than image 2.", 0),
    ("Image 2 appears darker, so Image 1 is brighter.", 0),
    ("The image on the left is brighter.", 0),
    ("Right", 1),
    ("The right image is sharper.", 1),
    ("I think B is more colorful.", 1),
    ("B is sharper than A.", 1),
    ("Image 2 is sharper, not image 1.", 1),
    ("Image 2, which has more vivid colors.", 1),
    ("The sharper image is Image 1.", 0),
    ("Image 2 (B) is more colorful.", 1),
    ("Sharper: Image 2", 1),
    ("I'd choose A.", 0),
    ("(B) Image 2 is brighter than (A) Image 1.", 1),
    ("(A) Image 1 is darker than (B) Image 2.", 1),
    ("Image 1 is darker than Image 2.", 1),
    ("Image 1 is not as bright as Image 2.", 1),
    ("Overall, Image 2 is less colorful than Image 1.", 0),
    # no valid or no decisive answer
    ("", None),
    ("C", None),
    ("(A) Image 1 (B) Image 2", None),
    ("Both images are equally bright.", None),
    ("Image 1, Image 2", None),
    ("Neither, they have the same contrast.", None),
    ("A brighter image.", None),
    ("A bright sunny landscape with vivid colors.", None),
    ("A. Image 1 B. Image 2", None),
]

# ooo: (A) Image 1, (B) Image 2, (C) Image 3, "which one is the odd-one-out?"
OOO = [
    ("A", 0),
    ("B", 1),
    ("C", 2),
    ("(C)", 2),
    ("C.", 2),
    ("c", 2),
    ("（C）", 2),
    ("Answer: C", 2),
    ("answer: b", 1),
    ("The answer is (A).", 0),
    ("\\boxed{C}", 2),
    ("Option C", 2),
    ("Option (B)", 1),
    ("(C) Image 3", 2),
    ("B) Image 2", 1),
    ("Image 1", 0),
    ("image 3", 2),
    ("Image three", 2),
    ("Image #2", 1),
    ("1", 0),
    ("3", 2),
    ("The third image is the odd one out.", 2),
    ("The 3rd image", 2),
    ("The first image", 0),
    ("The second one", 1),
    ("The odd image is image two.", 1),
    ("**C**", 2),
    ("<answer>B</answer>", 1),
    ("C. Image 3 is the odd one out because it shows a car, while images 1 and 2 show animals.", 2),
    ("Image 1 and Image 2 both show dogs, while Image 3 shows a cat, so the odd one out is Image 3.", 2),
    ("Images 1 and 2 are both flowers; Image 3 is a truck.", 2),
    ("Image 2 is the odd one out, as Image 1 and Image 3 are both red.", 1),
    ("The answer is Image 1, since Image 2 and Image 3 are both blue.", 0),
    ("Image 3, because images 1 and 2 are both blue squares.", 2),
    ("The odd one out is the middle image.", 1),
    ("The image in the middle", 1),
    ("The one on the left", 0),
    ("Left", 0),
    ("The image on the right", 2),
    ("I think B is the odd one out.", 1),
    ("B is the odd one out; A and C are both circles.", 1),
    ("The odd one out is (C).", 2),
    ("Image 2 is different from Image 1 and Image 3.", 1),
    ("Unlike Image 1 and Image 2, Image 3 is a vehicle.", 2),
    ("Option C: Image 3 — it is a truck, the others are flowers.", 2),
    ("The odd-one-out is (C) Image 3, since (A) Image 1 and (B) Image 2 are both cats.", 2),
    ("(B) Image 2 is the odd one out; (A) Image 1 and (C) Image 3 are both dogs.", 1),
    ("Image 3 is the odd one out; Image 1 and Image 2 are both cats.", 2),
    ("While Image 1 and Image 2 show cats, Image 3 is the odd one out.", 2),
    ("The odd one out is Image 1, Image 2 and Image 3 are both red.", 0),
    ("(A) Image 1 and (C) Image 3 are both red; (B) Image 2 is blue.", 1),
    # no valid or no decisive answer
    ("", None),
    ("D", None),
    ("Image 4", None),
    ("(A) Image 1 (B) Image 2 (C) Image 3", None),
    ("A, B or C", None),
    ("All three images look similar.", None),
    ("A red circle on a white background.", None),
    ("A. Image 1\nB. Image 2\nC. Image 3", None),
    ("The odd one out is (A) Image 1 or (B) Image 2.", None),
]

# it2afc with four candidates: (A)..(D) = Image 1..Image 4.
IT4AFC = [
    ("D", 3),
    ("(C)", 2),
    ("Image 4", 3),
    ("the third image", 2),
    ("Answer: D", 3),
    ("4", 3),
    ("C) Image 3", 2),
    ("D. Image 4", 3),
    ("I think the answer is C.", 2),
    ("Image 4 matches the caption best.", 3),
    ("The rightmost image", 3),
    ("The leftmost image", 0),
    ("(D) Image 4 matches the caption better than (A) Image 1.", 3),
    ("The answer is (C) Image 3 because (A) Image 1 and (B) Image 2 show cats.", 2),
    ("Not (A) Image 1 but (D) Image 4.", 3),
    ("E", None),
    ("Image 5", None),
    ("(A) Image 1 (B) Image 2 (C) Image 3 (D) Image 4", None),
    ("B or D", None),
    ("A. Image 1\nB. Image 2\nC. Image 3\nD. Image 4", None),
    ("(B) Image 2 or (C) Image 3", None),
]

CASES = (
    [("img2afc", 2, r, e) for r, e in IMG2AFC]
    + [("it2afc", 2, r, e) for r, e in IT2AFC]
    + [("text2afc", 2, r, e) for r, e in TEXT2AFC]
    + [("iqa", 2, r, e) for r, e in IQA]
    + [("paa", 2, r, e) for r, e in PAA]
    + [("ooo", 3, r, e) for r, e in OOO]
    + [("it2afc", 4, r, e) for r, e in IT4AFC]
)


@pytest.mark.parametrize(("task", "n", "response", "expected"), CASES, ids=lambda v: repr(v)[:60])
def test_parse_answer(task, n, response, expected):
    assert parse_answer(response, task, n) == expected


# Answers a careful reader resolves by meaning, which the rules cannot: documented, not promised.
KNOWN_LIMITATIONS = [
    ("iqa", 2, "Image 1 has better quality. Image 2 is blurry.", 0),  # both named, no cue word
    ("img2afc", 2, "Image 2 is more similar. Image 3 has a different color palette.", 0),
    ("ooo", 3, "Image 1 and Image 2 show circles while Image 3 shows a square.", 2),
]


@pytest.mark.xfail(strict=True, reason="needs semantics, not rules: the parser answers None or the foil")
@pytest.mark.parametrize(("task", "n", "response", "expected"), KNOWN_LIMITATIONS)
def test_known_limitations(task, n, response, expected):
    assert parse_answer(response, task, n) == expected


def test_dataset_suffix_and_case_are_ignored():
    assert parse_answer("Image 3", "img2afc_nights", 2) == 1
    assert parse_answer("Image 3", "IMG2AFC", 2) == 1


def test_option_names():
    assert option_names("img2afc", 2) == ["Image 2", "Image 3"]
    assert option_names("it2afc", 2) == ["Image 1", "Image 2"]
    assert option_names("it2afc", 4) == ["Image 1", "Image 2", "Image 3", "Image 4"]
    assert option_names("text2afc", 2) == ["Caption 1", "Caption 2"]
    assert option_names("iqa", 2) == option_names("paa", 2) == ["Image 1", "Image 2"]
    assert option_names("ooo", 3) == ["Image 1", "Image 2", "Image 3"]


@pytest.mark.parametrize(("task", "n"), [("img2afc", 2), ("text2afc", 2), ("ooo", 3), ("it2afc", 4)])
def test_round_trip_of_option_labels(task, n):
    """Every option, given as its letter, as "(X) its text", or as its text alone, parses back to itself."""
    for i, name in enumerate(option_names(task, n)):
        letter = "ABCDEFGH"[i]
        for response in (letter, f"({letter}) {name}", name, f"Answer: {letter.lower()}"):
            assert parse_answer(response, task, n) == i, response


def test_unknown_task_is_an_error():
    with pytest.raises(ValueError):
        parse_answer("A", "vqa", 2)
